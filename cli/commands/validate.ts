// `llem validate FILE...`: exit 0 when every file is valid, 2 with `file: field.path: message` lines.
import { parseArgs } from 'node:util';
import { formatIssue, isInvalidInput, InvalidInputError } from '../../lib/errors.ts';
import { loadManifestFile } from '../../lib/manifest/index.ts';

const HELP = `usage: llem validate FILE... [--quiet]

Checks EnergyExperiment manifests (multi-document files and extends: included).
Exit 0: all valid. Exit 2: one line per problem, "file: field.path: message".
  --quiet   print nothing on success (warnings are still printed)
`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    throw new InvalidInputError([
      { file: 'llem validate', path: '', message: err instanceof Error ? err.message : String(err) },
    ]);
  }
  if (parsed.values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  if (parsed.positionals.length === 0) {
    process.stderr.write(HELP);
    return 2;
  }
  let failed = false;
  for (const file of parsed.positionals) {
    try {
      const loaded = await loadManifestFile(file);
      for (const l of loaded) {
        for (const w of l.warnings)
          process.stderr.write(`${formatIssue({ ...w, message: `warning: ${w.message}` })}\n`);
        if (parsed.values.quiet !== true) {
          const m = l.matrix;
          process.stdout.write(
            `${l.file}: valid (${l.experiment.metadata.name}: ${m.configurations.length} configurations, ${m.runs.length} runs)\n`,
          );
        }
      }
    } catch (err) {
      if (!isInvalidInput(err)) throw err;
      failed = true;
      for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    }
  }
  return failed ? 2 : 0;
}
