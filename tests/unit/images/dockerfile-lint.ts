// A static Dockerfile linter for images/ (no container engine and no hadolint here): parses the
// instructions and checks what makes an image build on a real cluster without edits.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string | null;
  image: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Joins continuation lines, drops comments and blank lines. */
export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (buf === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (buf !== '' && line.trim().startsWith('#')) return;
    if (buf === '') start = i + 1;
    buf += (buf === '' ? '' : ' ') + line.replace(/\\$/, '').trim();
    if (!line.endsWith('\\')) {
      const m = /^(\S+)\s*(.*)$/.exec(buf);
      if (m !== null) out.push({ keyword: (m[1] ?? '').toUpperCase(), args: m[2] ?? '', line: start });
      buf = '';
    }
  });
  return out;
}

function substitute(value: string, vars: Record<string, string>): string {
  return value.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (whole, a: string | undefined, b: string | undefined) => vars[a ?? b ?? ''] ?? whole,
  );
}

function argDefault(args: string): [string, string | null] {
  const eq = args.indexOf('=');
  return eq < 0
    ? [args.trim(), null]
    : [
        args.slice(0, eq).trim(),
        args
          .slice(eq + 1)
          .trim()
          .replace(/^"|"$/g, ''),
      ];
}

export function parseDockerfile(text: string): ParsedDockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [k, v] = argDefault(ins.args);
      if (v !== null) globalArgs[k] = v;
      continue;
    }
    if (ins.keyword === 'FROM') {
      const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      const asIdx = parts.findIndex((p) => p.toUpperCase() === 'AS');
      stages.push({
        image: substitute(parts[0] ?? '', globalArgs),
        name: asIdx >= 0 ? (parts[asIdx + 1] ?? null) : null,
        instructions: [],
      });
      continue;
    }
    stages.at(-1)?.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** `KEY=value KEY2="quoted value"` -> map (LABEL and ENV syntax). */
export function parseKeyValues(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([\w.-]+)=("((?:[^"\\]|\\.)*)"|\S*)/g;
  for (const m of args.matchAll(re)) out[m[1] ?? ''] = m[3] ?? m[2] ?? '';
  return out;
}

function flagValue(args: string, flag: string): string | null {
  const m = new RegExp(`--${flag}=(\\S+)`).exec(args);
  return m === null ? null : (m[1] ?? null);
}

/** Source paths of a COPY/ADD (exec or shell form), without flags and without the destination. */
export function copySources(args: string): string[] {
  const body = args.replace(/--\S+\s*/g, '').trim();
  const words = body.startsWith('[') ? (JSON.parse(body) as string[]) : body.split(/\s+/);
  return words.slice(0, -1);
}

export interface LintOptions {
  repoRoot: string;
  requireNonRoot: boolean;
  requiredLabels: Record<string, string | null>;
  pinnedArgs: Record<string, string>;
}

function isPinned(image: string): boolean {
  if (image.includes('@sha256:')) return true;
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  if (colon < 0) return false;
  const tag = image.slice(colon + 1);
  return tag !== '' && tag !== 'latest' && /\d/.test(tag);
}

function lintStage(stage: Stage, earlier: Set<string>, opts: LintOptions, problems: string[]): void {
  for (const ins of stage.instructions) {
    const at = `line ${ins.line}`;
    if (ins.keyword === 'ADD' && /https?:\/\//.test(ins.args))
      problems.push(`${at}: ADD from a URL is not reproducible; download in a RUN with a checksum`);
    if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
      const from = flagValue(ins.args, 'from');
      if (from !== null) {
        if (!earlier.has(from) && !isPinned(from))
          problems.push(`${at}: COPY --from=${from} names no earlier stage and no pinned image`);
        continue;
      }
      for (const src of copySources(ins.args)) {
        if (!existsSync(join(opts.repoRoot, src)))
          problems.push(`${at}: COPY source ${src} does not exist in the repository`);
      }
    }
    if ((ins.keyword === 'ENTRYPOINT' || ins.keyword === 'CMD') && !ins.args.trim().startsWith('[')) {
      problems.push(`${at}: ${ins.keyword} must use the exec (JSON) form so signals reach the process`);
    }
    if (ins.keyword === 'RUN' && /\bpip install\b/.test(ins.args) && !ins.args.includes('--no-cache-dir')) {
      problems.push(`${at}: pip install without --no-cache-dir keeps the wheel cache in the layer`);
    }
    if (ins.keyword === 'RUN' && /\bnpm install\b/.test(ins.args))
      problems.push(`${at}: use npm ci (lockfile) instead of npm install`);
    if (ins.keyword === 'RUN' && /apt-get install/.test(ins.args) && !ins.args.includes('--no-install-recommends')) {
      problems.push(`${at}: apt-get install without --no-install-recommends`);
    }
  }
}

function lintFinalStage(final: Stage, opts: LintOptions, problems: string[]): void {
  const labels = Object.assign(
    {},
    ...final.instructions.filter((i) => i.keyword === 'LABEL').map((i) => parseKeyValues(i.args)),
  ) as Record<string, string>;
  for (const [key, want] of Object.entries(opts.requiredLabels)) {
    if (labels[key] === undefined || labels[key] === '') problems.push(`final stage: label ${key} is missing`);
    else if (want !== null && labels[key] !== want)
      problems.push(`final stage: label ${key} is "${labels[key]}", expected "${want}"`);
  }
  const user = final.instructions
    .filter((i) => i.keyword === 'USER')
    .at(-1)
    ?.args.trim();
  const rootAllowed = labels['dev.llem.runs-as-root'] === 'true';
  if (opts.requireNonRoot && !rootAllowed) {
    if (user === undefined) problems.push('final stage: no USER (the image would run as root)');
    else if (/^(root|0)(:|$)/.test(user)) problems.push(`final stage: USER ${user} is root`);
  }
}

export function lintDockerfile(text: string, opts: LintOptions): string[] {
  const problems: string[] = [];
  const parsed = parseDockerfile(text);
  if (parsed.stages.length === 0) return ['no FROM instruction'];
  const earlier = new Set<string>();
  for (const stage of parsed.stages) {
    if (!earlier.has(stage.image) && !isPinned(stage.image)) {
      problems.push(
        `FROM ${stage.image}: base image must carry an explicit version tag or digest (not latest, not untagged)`,
      );
    }
    lintStage(stage, earlier, opts, problems);
    if (stage.name !== null) earlier.add(stage.name);
  }
  for (const [arg, want] of Object.entries(opts.pinnedArgs)) {
    const got =
      parsed.globalArgs[arg] ??
      parsed.stages
        .flatMap((s) => s.instructions)
        .filter((i) => i.keyword === 'ARG')
        .map((i) => argDefault(i.args))
        .find(([k]) => k === arg)?.[1];
    if (got !== undefined && got !== null && got !== want)
      problems.push(`ARG ${arg}=${got} differs from images/versions.env (${want})`);
  }
  const final = parsed.stages.at(-1);
  if (final !== undefined) lintFinalStage(final, opts, problems);
  return problems;
}
