// Shared set-up for the protocol tests: a config with short phases, a recording bus, a mock server.
import { parseAgentConfig, type AgentConfig, type AgentConfigInput } from '../../../agent/config.ts';
import type { WireMessage } from '../../../api/protocol.ts';

export function protocolConfig(
  baseUrl: string,
  over: { [K in keyof AgentConfigInput]?: Record<string, unknown> } = {},
): AgentConfig {
  const input = {
    publisher: { namespace: 'ns', experimentUid: 'uid-1', runId: 'run-a', attempt: 2, ...over.publisher },
    model: 'mock-simulated',
    backend: { name: 'mock', baseUrl, readinessTimeoutSeconds: 10, ...over.backend },
    workload: { requests: 30, concurrency: 4, inputTokens: 16, outputTokens: 8, ...over.workload },
    measurement: {
      warmupRequests: 3,
      baselineSeconds: 0.3,
      cooldownSeconds: 0.2,
      minWindowSeconds: 0,
      sampleIntervalMs: 20,
      sliceMs: 100,
      telemetryBatchMs: 50,
      ...over.measurement,
    },
    start: { mode: 'immediate', timeoutSeconds: 10, ...over.start },
    telemetry: { source: 'simulated', ...over.telemetry },
  };
  return parseAgentConfig(input, 'test');
}

/** Resolve once `pred` holds for some published message (polling; tests only). */
export async function until(
  messages: readonly WireMessage[],
  pred: (m: WireMessage) => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!messages.some(pred)) {
    if (performance.now() > end) throw new Error('timed out waiting for a message');
    await new Promise((r) => setTimeout(r, 10));
  }
}
