// Waiting for the controller's start signal: every replica of a run begins its window together.
import { StartSignalSchema, startSubject, type PublisherKey } from '../api/protocol.ts';
import type { Bus, ControlSubscription } from '../lib/bus/types.ts';
import { LlemError } from '../lib/errors.ts';

export interface StartWait {
  /** Resolves with the agreed start time (wall clock ms), or null when aborted. */
  startAt: Promise<number | null>;
  cancel(): Promise<void>;
}

/** Subscribe first (before publishing `ready`) so a fast controller's signal cannot be missed. */
export async function subscribeStart(
  bus: Bus,
  key: PublisherKey,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<StartWait> {
  let resolveStart!: (v: number | null) => void;
  let rejectStart!: (e: Error) => void;
  const startAt = new Promise<number | null>((resolve, reject) => {
    resolveStart = resolve;
    rejectStart = reject;
  });
  const sub: ControlSubscription = await bus.subscribeControl(
    startSubject(key.namespace, key.experimentUid, key.runId),
    (data) => {
      let raw: unknown;
      try {
        raw = JSON.parse(Buffer.from(data).toString('utf8'));
      } catch {
        return;
      }
      const parsed = StartSignalSchema.safeParse(raw);
      // A signal for another attempt of this run (a stale controller retry) is not ours.
      if (parsed.success && parsed.data.experimentUid === key.experimentUid && parsed.data.attempt === key.attempt) {
        resolveStart(parsed.data.startAtMs);
      }
    },
  );
  const timer = setTimeout(
    () =>
      rejectStart(
        new LlemError(
          'LLEM_E_RUN',
          `no start signal within ${Math.round(timeoutMs / 1000)} s after ready (is the controller running? raise start.timeoutSeconds)`,
        ),
      ),
    timeoutMs,
  );
  const onAbort = (): void => resolveStart(null);
  signal.addEventListener('abort', onAbort, { once: true });
  const cancel = async (): Promise<void> => {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    await sub.unsubscribe();
  };
  void startAt.catch(() => undefined).finally(() => clearTimeout(timer));
  return { startAt, cancel };
}
