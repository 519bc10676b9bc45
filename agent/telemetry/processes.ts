// Exclusivity: which processes hold a context on a measured GPU, and which of them are not ours.
// "Ours" is this process and its descendants (the agent supervises the backend as a child group;
// `llem run` starts its servers as children). NVML reports PIDs in the root PID namespace, so in a
// container a listed PID may name no process we can see: those are counted, and only the excess
// over our own process count is certainly foreign.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ListedProcess {
  gpuUuid: string;
  pid: number;
  usedMemoryMiB: number | null;
  /** compute | graphics | mps (a client of an MPS server). */
  kind: string;
}

export interface ForeignProcess {
  gpuUuid: string;
  pid: number;
  /** /proc/<pid>/comm, or null when the PID is not visible in this PID namespace. */
  name: string | null;
  usedMemoryMiB: number | null;
}

export interface ProcessVerdict {
  own: number;
  foreign: ForeignProcess[];
  /** Listed PIDs not visible here that may still be ours (PID namespaces): exclusivity unverified for them. */
  unverified: number;
}

/** A snapshot of /proc: parent of every visible PID, and names on demand. */
export interface ProcessTable {
  parentOf(pid: number): number | undefined;
  nameOf(pid: number): string | null;
  pids(): Iterable<number>;
}

export function readProcessTable(procRoot = '/proc'): ProcessTable {
  const parents = new Map<number, number>();
  let pids: string[] = [];
  try {
    pids = readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    // no procfs (not Linux): nothing is ours but ourselves
  }
  for (const d of pids) {
    try {
      const stat = readFileSync(join(procRoot, d, 'stat'), 'utf8');
      // comm may hold spaces and parentheses: fields after the last ')' are fixed.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(d), Number(rest[1]));
    } catch {
      // exited between readdir and read
    }
  }
  return {
    parentOf: (pid) => parents.get(pid),
    pids: () => parents.keys(),
    nameOf: (pid) => {
      if (!parents.has(pid)) return null;
      try {
        return readFileSync(join(procRoot, String(pid), 'comm'), 'utf8').trim();
      } catch {
        return null;
      }
    },
  };
}

function descendsFrom(table: ProcessTable, pid: number, root: number): boolean {
  let p: number | undefined = pid;
  for (let hops = 0; p !== undefined && p > 0 && hops < 64; hops++) {
    if (p === root) return true;
    p = table.parentOf(p);
  }
  return false;
}

/** Our process tree's size: the most listed-but-invisible PIDs that could be ours. */
function treeSize(table: ProcessTable, root: number, visiblePids: Iterable<number>): number {
  let n = 0;
  for (const pid of visiblePids) if (descendsFrom(table, pid, root)) n++;
  return n;
}

export function classifyProcesses(
  listed: readonly ListedProcess[],
  table: ProcessTable,
  rootPid: number,
): ProcessVerdict {
  const verdict: ProcessVerdict = { own: 0, foreign: [], unverified: 0 };
  const invisible: ListedProcess[] = [];
  const seen = new Set<string>();
  for (const p of listed) {
    const key = `${p.gpuUuid}/${p.pid}`;
    if (seen.has(key)) continue; // one process can be listed as compute and graphics
    seen.add(key);
    if (table.parentOf(p.pid) === undefined) invisible.push(p);
    else if (descendsFrom(table, p.pid, rootPid)) verdict.own++;
    else
      verdict.foreign.push({
        gpuUuid: p.gpuUuid,
        pid: p.pid,
        name: table.nameOf(p.pid),
        usedMemoryMiB: p.usedMemoryMiB,
      });
  }
  if (invisible.length === 0) return verdict;
  // Invisible PIDs per GPU beyond what our tree could account for are certainly someone else's.
  const room = Math.max(0, treeSize(table, rootPid, table.pids()) - verdict.own);
  const byGpu = new Map<string, ListedProcess[]>();
  for (const p of invisible) byGpu.set(p.gpuUuid, [...(byGpu.get(p.gpuUuid) ?? []), p]);
  for (const list of byGpu.values()) {
    const excess = list.slice(room);
    verdict.unverified += list.length - excess.length;
    verdict.foreign.push(
      ...excess.map((p) => ({ gpuUuid: p.gpuUuid, pid: p.pid, name: null, usedMemoryMiB: p.usedMemoryMiB })),
    );
  }
  return verdict;
}

export function describeForeign(f: ForeignProcess): string {
  const who = f.name === null ? `pid ${f.pid} (not visible in this PID namespace)` : `pid ${f.pid} (${f.name})`;
  return `${who} on ${f.gpuUuid}${f.usedMemoryMiB === null ? '' : `, ${Math.round(f.usedMemoryMiB)} MiB`}`;
}

export interface ExclusivityFindings {
  /** Distinct foreign processes seen since the given time, described. */
  foreign: string[];
  /** Most processes at one listing that could not be attributed (PID namespaces). */
  unverified: number;
}

export function exclusivityFindings(
  sightings: ReadonlyArray<{ tMs: number; verdict: ProcessVerdict }>,
  sinceMs: number,
): ExclusivityFindings {
  const foreign = new Map<string, string>();
  let unverified = 0;
  for (const s of sightings) {
    if (s.tMs < sinceMs) continue;
    for (const f of s.verdict.foreign) foreign.set(`${f.gpuUuid}/${f.pid}`, describeForeign(f));
    unverified = Math.max(unverified, s.verdict.unverified);
  }
  return { foreign: [...foreign.values()], unverified };
}
