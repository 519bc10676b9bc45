import { mkdtemp, mkdir, rm, writeFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isInvalidInput } from '../../../lib/errors.ts';

export const VALID_DOC = `apiVersion: llem.dev/v1alpha1
kind: EnergyExperiment
metadata:
  name: demo
spec:
  model:
    name: Qwen/Qwen2.5-0.5B-Instruct
    source:
      random: { numHeads: 4, numKvHeads: 2 }
  backends:
    - type: vllm
  measurement:
    cycles: 2
`;

export interface Tree {
  dir: string;
  file: (rel: string) => string;
  write: (rel: string, text: string) => Promise<string>;
  link: (rel: string, target: string) => Promise<void>;
  cleanup: () => Promise<void>;
}

export async function tree(): Promise<Tree> {
  const dir = await mkdtemp(path.join(tmpdir(), 'llem-manifest-'));
  const file = (rel: string): string => path.join(dir, rel);
  return {
    dir,
    file,
    write: async (rel, text) => {
      await mkdir(path.dirname(file(rel)), { recursive: true });
      await writeFile(file(rel), text);
      return file(rel);
    },
    link: async (rel, target) => {
      await mkdir(path.dirname(file(rel)), { recursive: true });
      await symlink(target, file(rel));
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The issue lines of the InvalidInputError `fn` throws (fails the test when it does not throw one). */
export async function issueLines(fn: () => Promise<unknown>): Promise<string[]> {
  try {
    await fn();
  } catch (err) {
    if (isInvalidInput(err)) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected an InvalidInputError, nothing was thrown');
}
