// `llem nats-server-config`: writes the NATS server configuration with the trust section of ADR 0011
// (operator, system account, llem account), derived from LLEM_NATS_ISSUER_SECRET. The chart runs it
// in the NATS pod's init container, so the server trusts exactly the key the controller signs with.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BusIssuer } from '../../lib/bus/index.ts';
import { InvalidInputError } from '../../lib/errors.ts';

const USAGE = `usage: llem nats-server-config --base FILE --out FILE

Writes FILE (--out): the server configuration in --base followed by the operator-mode trust section
derived from env LLEM_NATS_ISSUER_SECRET (the same secret the controller signs credentials with).
`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { base: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const issues = [];
  if (values.base === undefined)
    issues.push({ file: 'llem nats-server-config', path: 'base', message: 'required: --base FILE' });
  if (values.out === undefined)
    issues.push({ file: 'llem nats-server-config', path: 'out', message: 'required: --out FILE' });
  const secret = process.env['LLEM_NATS_ISSUER_SECRET'] ?? '';
  if (secret === '')
    issues.push({
      file: 'LLEM_NATS_ISSUER_SECRET',
      path: '',
      message: "not set: pass it from the chart's NATS auth Secret",
    });
  if (issues.length > 0 || values.base === undefined || values.out === undefined) throw new InvalidInputError(issues);
  let base: string;
  try {
    base = readFileSync(values.base, 'utf8');
  } catch (err) {
    throw new InvalidInputError(
      [{ file: values.base, path: '', message: `cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})` }],
      { cause: err },
    );
  }
  const text = `${base.trimEnd()}\n\n${new BusIssuer(secret).serverConfig()}`;
  // Written next to the target and renamed: nats-server never reads a half-written file.
  const tmp = `${values.out}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o640 });
  renameSync(tmp, values.out);
  return 0;
}
