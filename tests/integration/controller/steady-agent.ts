// A deterministic stand-in for the agent, for the crash tests: the node player calls it for each pod
// and it publishes the fake agent's complete simulated sequence with every clock fixed (so two
// experiments measured at different times give the same aggregates), spread over `spanMs` so runs
// are in flight while the controller is killed.
import { dataSubject, encodeMessage, messageId, type WireMessage } from '../../../api/protocol.ts';
import type { Bus } from '../../../lib/bus/types.ts';
import type { PodOutcome, PodRun } from '../../support/node-player.ts';
import { fakeMessages } from '../../support/fake-agent.ts';

const T0_MS = 1_700_000_000_000;

interface Publisher {
  namespace: string;
  experimentUid: string;
  runId: string;
  attempt: number;
  replica: number;
}

/** Rewrites every timestamp the fake sequence takes from the clock. */
function fixClock(m: WireMessage): WireMessage {
  const out = { ...m, sentAtMs: T0_MS + m.seq } as Record<string, unknown>;
  if (m.kind === 'telemetry')
    out['samples'] = m.samples.map((s) => ({ ...s, tMs: T0_MS + (m.mark === 'windowStart' ? 0 : 1000) }));
  if (m.kind === 'sketch') Object.assign(out, { sliceStartMs: T0_MS, sliceEndMs: T0_MS + 1000 });
  if (m.kind === 'summary') Object.assign(out, { windowStartMs: T0_MS, windowEndMs: T0_MS + 1000 });
  return out as unknown as WireMessage;
}

export function steadyAgent(bus: Bus, spanMs = 800): (run: PodRun, signal: AbortSignal) => Promise<PodOutcome> {
  return async (run, signal) => {
    const cfg = JSON.parse(run.env['LLEM_AGENT_CONFIG'] ?? '{}') as { publisher?: Publisher; configHash?: string };
    if (cfg.publisher === undefined) return { exitCode: 2, reason: 'Error', message: 'no LLEM_AGENT_CONFIG' };
    const p = cfg.publisher;
    // Energy and tokens differ per replica, so a mixed-up replica or run would show in the aggregates.
    const msgs = fakeMessages(p, 100 + 10 * p.replica, 40 + p.replica, cfg.configHash ?? '').map(fixClock);
    for (const m of msgs) {
      if (signal.aborted) return { exitCode: 143, reason: 'Error', message: 'stopped' };
      await bus.publish(dataSubject(p, m.kind), encodeMessage(m), { msgId: messageId(m) });
      await new Promise((r) => setTimeout(r, spanMs / msgs.length));
    }
    return { exitCode: 0, reason: 'Completed' };
  };
}
