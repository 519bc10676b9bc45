// `--out DIR` checks made before anything runs. Kernel pseudo-filesystems (/proc, /sys, /dev and
// their kin) are refused: nothing written there is a result, and `mkdir -p` under /proc never
// returns in Node (libuv keeps retrying), a loop no signal can interrupt.
import { realpathSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../lib/errors.ts';

const PSEUDO_ROOTS = ['/proc', '/sys', '/dev'];

/** statfs f_type of kernel pseudo-filesystems (linux/magic.h). */
const PSEUDO_FS_TYPES = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6e736673, 'nsfs'],
  [0x50495045, 'pipefs'],
  [0x534f434b, 'sockfs'],
]);

function under(p: string, root: string): boolean {
  return p === root || p.startsWith(`${root}/`);
}

/** The deepest ancestor of `abs` (itself included) that exists, and where it really is (symlinks resolved). */
function existingAncestor(abs: string): { ancestor: string; real: string } {
  for (let p = abs; ; p = path.dirname(p)) {
    try {
      return { ancestor: p, real: realpathSync(p) };
    } catch {
      if (path.dirname(p) === p) return { ancestor: p, real: p };
    }
  }
}

/** Throws InvalidInputError (exit 2) when `out` is, or resolves to, a place no results can go. */
export function checkOutDir(out: string, flag = '--out'): void {
  const issue = (message: string): InvalidInputError =>
    new InvalidInputError([{ file: 'llem run', path: flag, message }]);
  if (out.trim() === '') throw issue('is empty; give a directory for the results');
  if (out.includes('\0')) throw issue('contains a NUL character');
  const abs = path.resolve(out);
  const { ancestor, real } = existingAncestor(abs);
  // Where the directory would really be created: a symlink to /proc is refused like /proc itself.
  const target = path.join(real, path.relative(ancestor, abs));
  for (const root of PSEUDO_ROOTS) {
    if (under(abs, root) || under(target, root)) {
      throw issue(`${out} is under ${root}, a kernel pseudo-filesystem; choose a directory on a real disk`);
    }
  }
  let type: number | undefined;
  try {
    type = statfsSync(real).type;
  } catch {
    return; // the write probe later reports an unreadable place with its own error
  }
  const name = PSEUDO_FS_TYPES.get(type);
  if (name !== undefined)
    throw issue(`${out} is on a ${name} filesystem (a kernel pseudo-filesystem); choose a directory on a real disk`);
}

/** Largest results file `llem results` reads: a real experiment.json is kilobytes to a few megabytes. */
const MAX_RESULTS_FILE_BYTES = 256 * 1024 * 1024;

/**
 * A results file must be a regular file of bounded size: a FIFO, /dev/zero or a device behind a
 * symlink would block or stream forever inside a synchronous read that no signal interrupts.
 */
export function checkResultsFile(file: string): void {
  let info;
  try {
    info = statSync(file);
  } catch {
    return; // missing: the reader says what a results directory needs
  }
  if (!info.isFile())
    throw new InvalidInputError([
      {
        file,
        path: '',
        message:
          'is not a regular file (a device, FIFO or directory); pass the --out directory of a finished `llem run`',
      },
    ]);
  if (info.size > MAX_RESULTS_FILE_BYTES)
    throw new InvalidInputError([
      { file, path: '', message: `is ${info.size} bytes; a results file is at most ${MAX_RESULTS_FILE_BYTES}` },
    ]);
}
