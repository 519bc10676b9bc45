// `llem crd generate [--out FILE]` writes the CRD YAML; `llem crd check FILE` exits 1 when FILE is stale.
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { energyExperimentCrd } from '../../api/crd.ts';
import { InvalidInputError } from '../../lib/errors.ts';

const HELP = `usage: llem crd generate [--out FILE]   write the EnergyExperiment CRD (stdout without --out)
       llem crd check FILE            exit 1 when FILE differs from what generate writes
`;

const HEADER =
  '# Generated from api/spec.ts and api/status.ts by `npm run crd:gen` (llem crd generate). Do not edit.\n';

export function crdYaml(): string {
  // YAML 1.1 output: kubectl and the API server read YAML 1.1, where an unquoted `n`, `y`, `on` or
  // `no` is a boolean (the Stat field `n` broke the CRD before this).
  return HEADER + stringify(energyExperimentCrd(), { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false });
}

/** Temp file + rename; on failure the temp file is removed and the error names --out. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text, 'utf8');
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EISDIR'
        ? 'it is a directory; give a file path'
        : code === 'ENOENT'
          ? 'its directory does not exist'
          : 'choose a writable path';
    throw new InvalidInputError([{ file, path: '--out', message: `cannot write (${code ?? String(err)}): ${hint}` }], {
      cause: err,
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new InvalidInputError([
      { file: 'llem crd', path: '', message: err instanceof Error ? err.message : String(err) },
    ]);
  }
  const [action, file] = parsed.positionals;
  if (parsed.values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const text = crdYaml();
  if (action === 'generate') {
    if (parsed.values.out === undefined) process.stdout.write(text);
    else await writeAtomically(parsed.values.out, text);
    return 0;
  }
  if (action === 'check' && file !== undefined) {
    let current: string;
    try {
      current = await readFile(file, 'utf8');
    } catch (err) {
      throw new InvalidInputError(
        [
          {
            file,
            path: '',
            message: `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)}); give the CRD file to check`,
          },
        ],
        { cause: err },
      );
    }
    if (current === text) return 0;
    process.stderr.write(`${file} is stale: run \`npm run crd:gen\` and commit the result\n`);
    return 1;
  }
  process.stderr.write(HELP);
  return 2;
}
