// `llem run`'s trace and conversation files (docs/workloads.md): read and checked before anything is
// written, so a bad line is an input error naming file:line (exit 2) and no results directory appears.
import { readFileSync } from 'node:fs';
import { parseConversations, parseTrace } from '../agent/index.ts';
import { InvalidInputError } from '../lib/errors.ts';
import type { LoadedExperiment } from '../lib/manifest/index.ts';

/** A local trace or conversations file: read and checked before anything is written (file:line errors, exit 2). */
export function assertLocalFiles(loaded: LoadedExperiment): void {
  for (const c of loaded.matrix.configurations) {
    const d = c.workload.dataset;
    const files: ReadonlyArray<readonly [string, string | undefined, (text: string, file: string) => unknown]> = [
      ...(d.trace === undefined ? [] : [['trace', d.trace.file, parseTrace] as const]),
      ...(d.conversations === undefined ? [] : [['conversations', d.conversations.file, parseConversations] as const]),
    ];
    for (const [what, file, parse] of files) {
      if (file === undefined) {
        const message = `a PersistentVolumeClaim exists only in a cluster; for llem run give ${what}.file (a local path)`;
        throw new InvalidInputError([{ file: loaded.file, path: `spec.workload.dataset.${what}.pvc`, message }]);
      }
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        throw new InvalidInputError([
          {
            file: loaded.file,
            path: `spec.workload.dataset.${what}.file`,
            message: `cannot read ${file} (${why}); give a JSONL file relative to the working directory`,
          },
        ]);
      }
      parse(text, file);
    }
  }
}
