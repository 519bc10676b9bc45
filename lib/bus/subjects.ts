// Subject rules both buses enforce, and the names derived from subjects (dead letters, checkpoints).
import {
  BATCH_KIND,
  CONTROL_ROOT,
  SUBJECT_ROOT,
  dataSubject,
  type MessageKind,
  type PublisherKey,
} from '../../api/protocol.ts';
import { sanitizeToken } from '../../api/names.ts';
import { BusError } from '../errors.ts';

/** Dead letters live under their own root so they never re-enter the data stream's `llem.v1.>`. */
export const DEAD_LETTER_ROOT = 'llem.dlq.v1';

/** NATS subject matching: `*` matches one token, a final `>` matches one or more tokens. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    const token = f[i];
    if (token === '>') return s.length > i;
    if (i >= s.length) return false;
    if (token !== '*' && token !== s[i]) return false;
  }
  return f.length === s.length;
}

function validTokens(subject: string, allowWildcards: boolean): boolean {
  return subject.split('.').every((t, i, all) => {
    if (t === '' || /\s/.test(t)) return false;
    if (t === '*') return allowWildcards;
    if (t === '>') return allowWildcards && i === all.length - 1;
    return !t.includes('*') && !t.includes('>');
  });
}

/** A publishable data subject: under `llem.v1.`, no wildcards, no empty tokens. */
export function assertDataSubject(subject: string): void {
  if (!subject.startsWith(`${SUBJECT_ROOT}.`) || !validTokens(subject, false)) {
    throw new BusError(
      `data subject "${subject}" must be a literal subject under ${SUBJECT_ROOT}. (use dataSubject())`,
    );
  }
}

/** A consumer filter under `llem.v1.`; wildcards allowed. */
export function assertDataFilter(filter: string): void {
  if (!filter.startsWith(`${SUBJECT_ROOT}.`) || !validTokens(filter, true)) {
    throw new BusError(`subject filter "${filter}" must be under ${SUBJECT_ROOT}. (use experimentSubjectFilter())`);
  }
}

/** Control subjects: under `llem.control.v1.`; wildcards only when subscribing. */
export function assertControlSubject(subject: string, allowWildcards: boolean): void {
  if (!subject.startsWith(`${CONTROL_ROOT}.`) || !validTokens(subject, allowWildcards)) {
    throw new BusError(`control subject "${subject}" must be under ${CONTROL_ROOT}. (use startSubject())`);
  }
}

/** `llem.v1.<rest>` -> `llem.dlq.v1.<rest>`. */
export function deadLetterSubject(dataSubject: string): string {
  return `${DEAD_LETTER_ROOT}.${dataSubject.slice(SUBJECT_ROOT.length + 1)}`;
}

/** The dead-letter subjects of one experiment. */
export function experimentDeadLetterFilter(namespace: string, experimentUid: string): string {
  return `${DEAD_LETTER_ROOT}.${sanitizeToken(namespace)}.${sanitizeToken(experimentUid)}.>`;
}

/**
 * Checkpoint keys of one experiment are this key, or this key + `.` + anything:
 * deleteExperiment() removes exactly those.
 */
export function experimentCheckpointKey(namespace: string, experimentUid: string): string {
  return `${sanitizeToken(namespace)}.${sanitizeToken(experimentUid)}`;
}

const CHECKPOINT_KEY = /^[-/_=.a-zA-Z0-9]+$/;

/** Same rule as JetStream KV keys, enforced by both buses so local mode cannot accept what NATS rejects. */
export function assertCheckpointKey(key: string): void {
  if (!CHECKPOINT_KEY.test(key) || key.startsWith('.') || key.endsWith('.') || key.includes('..')) {
    throw new BusError(`checkpoint key "${key}" may hold only [-/_=.a-zA-Z0-9] with no empty dot-separated part`);
  }
}

export function belongsToExperiment(key: string, experimentKey: string): boolean {
  return key === experimentKey || key.startsWith(`${experimentKey}.`);
}

/**
 * Why a message's body does not belong on the subject it arrived on, or null. The server checks the
 * publisher's identity against the subject (ADR 0011), never the body: a body naming another run,
 * attempt, replica or experiment than its subject is a forgery by an authenticated agent.
 */
export function subjectMismatch(
  subject: string,
  body: PublisherKey & { kind: MessageKind },
  /** The message arrived in a batch (ADR 0021): its subject names the batch, not its kind. */
  batch = false,
): string | null {
  const expected = dataSubject(body, batch ? BATCH_KIND : body.kind);
  return expected === subject ? null : `body says ${expected} but arrived on ${subject}`;
}
