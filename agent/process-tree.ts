// The backend's process group, watched from /proc (Linux): vLLM and TensorRT-LLM start one worker per GPU
// plus helpers under the server process. A worker that dies leaves the front process serving nothing or
// hanging; the group leader's exit says nothing about it. Members present once the server is ready are its
// tree; one of them vanishing (or turning zombie) while nobody is stopping the server is a failure, reported
// with its pid and command within one poll interval (ADR 0025).
import { readdirSync, readFileSync } from 'node:fs';

export interface GroupMember {
  pid: number;
  command: string;
}

interface ProcStat {
  pgrp: number;
  state: string;
}

function statOf(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the fields after it start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '?', pgrp: Number(fields[2]) };
  } catch {
    return null;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 200);
  } catch {
    return '?';
  }
}

/** Live (not zombie) processes of process group `pgid`, leader included. */
export function groupMembers(pgid: number): GroupMember[] {
  const out: GroupMember[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const st = statOf(pid);
    if (st === null || st.pgrp !== pgid || st.state === 'Z' || st.state === 'X') continue;
    out.push({ pid, command: commandOf(pid) });
  }
  return out;
}

function alive(pid: number): boolean {
  const st = statOf(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

export interface GroupWatch {
  /** Resolves with a sentence when a member of the tree dies; never resolves otherwise. */
  died: Promise<string>;
  stop(): void;
}

/**
 * Snapshots the group's members but its leader now (call it once the server is ready: its tree is then
 * complete) and polls them every `intervalMs`; the first to die resolves `died`. Processes that join later
 * are not watched: a server may run short-lived helpers whose normal exit is no failure.
 */
export function watchGroup(pgid: number, intervalMs = 250): GroupWatch {
  // The leader is left out: its exit is the supervisor's to report (with its exit code and last lines).
  const watched = new Map<number, string>(
    groupMembers(pgid)
      .filter((m) => m.pid !== pgid)
      .map((m) => [m.pid, m.command]),
  );
  let timer: NodeJS.Timeout | null = null;
  let settle: (why: string) => void = () => undefined;
  const died = new Promise<string>((resolve) => (settle = resolve));
  const poll = (): void => {
    for (const [pid, command] of watched) {
      if (alive(pid)) continue;
      stop();
      settle(`process ${pid} of the backend's process tree (${command}) died`);
      return;
    }
  };
  const stop = (): void => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  timer = setInterval(poll, intervalMs);
  timer.unref();
  return { died, stop };
}

/** Polls until no process of the group is alive; resolves with the milliseconds it took (or null at the limit). */
export async function awaitGroupGone(pgid: number, limitMs: number, intervalMs = 50): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    if (groupMembers(pgid).length === 0) return Math.round(performance.now() - t0);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return null;
}
