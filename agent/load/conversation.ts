// Multi-turn conversations (issue #22 item 5): one conversation a line of a JSONL file,
//   {"turns": [{"user": "text", "outputTokens": 64, "thinkTimeMs": 1500}, ...]}
// Each turn's prompt holds every earlier turn and its answer ("User: ...\nAssistant: ..."), so a backend
// with a prefix cache finds the conversation so far cached; the next turn leaves `thinkTimeMs` after the
// answer ended. outputTokens (default: the workload's output length) and thinkTimeMs (default 0) may be left out.
import { InvalidInputError, type InputIssue } from '../../lib/errors.ts';

export interface ConversationTurn {
  user: string;
  outputTokens?: number;
  thinkTimeMs: number;
}

export interface Conversation {
  turns: ConversationTurn[];
}

function turnIssue(t: unknown, k: number): string | null {
  if (typeof t !== 'object' || t === null) return `turns[${k}] is not an object`;
  const turn = t as Record<string, unknown>;
  if (typeof turn['user'] !== 'string' || turn['user'].trim() === '')
    return `turns[${k}].user must be a non-empty string`;
  const out = turn['outputTokens'];
  if (out !== undefined && (typeof out !== 'number' || !Number.isInteger(out) || out < 1))
    return `turns[${k}].outputTokens must be a positive integer (got ${JSON.stringify(out)})`;
  const think = turn['thinkTimeMs'];
  if (think !== undefined && (typeof think !== 'number' || !Number.isFinite(think) || think < 0))
    return `turns[${k}].thinkTimeMs must be a number >= 0 (got ${JSON.stringify(think)})`;
  return null;
}

function parseLine(text: string): Conversation | string {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch {
    return 'is not a JSON object';
  }
  const turns = typeof row === 'object' && row !== null ? (row as { turns?: unknown }).turns : undefined;
  if (!Array.isArray(turns) || turns.length === 0)
    return 'has no "turns" list (each line: {"turns": [{"user": "..."}]})';
  for (const [k, t] of turns.entries()) {
    const issue = turnIssue(t, k);
    if (issue !== null) return issue;
  }
  return {
    turns: turns.map((t: Record<string, unknown>) => ({
      user: t['user'] as string,
      ...(t['outputTokens'] === undefined ? {} : { outputTokens: t['outputTokens'] as number }),
      thinkTimeMs: (t['thinkTimeMs'] as number | undefined) ?? 0,
    })),
  };
}

/** Parses a conversations file; every bad line is an issue naming file:line (InvalidInputError, exit 2). */
export function parseConversations(text: string, file: string): Conversation[] {
  const out: Conversation[] = [];
  const issues: InputIssue[] = [];
  text.split('\n').forEach((line, n) => {
    if (line.trim() === '' || issues.length >= 20) return;
    const c = parseLine(line);
    if (typeof c === 'string') issues.push({ file: `${file}:${n + 1}`, path: '', message: c });
    else out.push(c);
  });
  if (issues.length === 0 && out.length === 0)
    issues.push({ file, path: '', message: 'holds no conversations (one {"turns": [...]} per line)' });
  if (issues.length > 0) throw new InvalidInputError(issues);
  return out;
}

/** The prompt of the next turn: the conversation so far, then this turn's user message. */
export function turnPrompt(history: string, user: string): string {
  return `${history}User: ${user}\nAssistant:`;
}
