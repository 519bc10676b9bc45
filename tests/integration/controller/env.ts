// Shared set-up for the controller integration tests: a real kube-apiserver + etcd (tests/support/
// kube.ts), a real nats-server, the node player running each pod's agent locally with the
// simulated GPU + mock server, and controllers started in-process against all of them.
import { KubeConfig } from '@kubernetes/client-node';
import { Controller, type ControllerOptions } from '../../../controller/index.ts';
import { openNatsBus } from '../../../lib/bus/index.ts';
import type { Bus } from '../../../lib/bus/types.ts';
import { rootLogger } from '../../../lib/log.ts';
import { EnergyExperimentStatusSchema, type EnergyExperimentStatus } from '../../../api/status.ts';
import {
  startKube,
  localAgentRunner,
  type KubeCluster,
  type NodePlayer,
  type PodRun,
  type PodOutcome,
} from '../../support/kube.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

export interface TestEnv {
  kube: KubeCluster;
  nats: NatsServerHandle;
  player: NodePlayer;
  /** Controllers started with `startController`, stopped by `close`. */
  controllers: { controller: Controller; bus: Bus }[];
  startController(overrides?: Partial<ControllerOptions>): Promise<Controller>;
  stopController(c: Controller): Promise<void>;
  openBus(): Promise<Bus>;
  close(): Promise<void>;
}

export interface EnvOptions {
  /** Wraps the default runner (the real agent) so a test can interfere with a pod. */
  run?: (
    run: PodRun,
    signal: AbortSignal,
    real: (run: PodRun, signal: AbortSignal) => Promise<PodOutcome>,
  ) => Promise<PodOutcome>;
}

export async function startEnv(opts: EnvOptions = {}): Promise<TestEnv> {
  const kube = await startKube();
  const nats = await startNatsServer();
  const real = localAgentRunner({ env: { LLEM_NATS_URL: nats.url, LLEM_LOG_LEVEL: 'warn' } });
  const player = await kube.startNodePlayer({
    run: (r, s) => (opts.run === undefined ? real(r, s) : opts.run(r, s, real)),
  });
  const controllers: TestEnv['controllers'] = [];
  const openBus = (): Promise<Bus> => openNatsBus({ servers: nats.url, name: 'llem-test' }, 'test');
  const env: TestEnv = {
    kube,
    nats,
    player,
    controllers,
    openBus,
    async startController(overrides = {}) {
      const bus = await openBus();
      const kc: KubeConfig = kube.kubeConfig('admin');
      const controller = new Controller({
        kubeConfig: kc,
        bus,
        workers: 2,
        podOptions: {
          agentImage: 'llem/agent:test',
          backendImages: {},
          agentEnv: [{ name: 'LLEM_NATS_URL', value: nats.url }],
          simulate: true,
        },
        leaderElection: {
          enabled: true,
          namespace: 'default',
          name: 'llem-controller',
          leaseDurationMs: 8000,
          renewDeadlineMs: 5000,
          retryPeriodMs: 500,
        },
        probe: { host: '127.0.0.1', port: 0 },
        retryBaseMs: 500,
        checkpointMs: 200,
        log: rootLogger.child({ component: 'controller-under-test' }),
        ...overrides,
      });
      await controller.start();
      controllers.push({ controller, bus });
      return controller;
    },
    async stopController(c) {
      const i = controllers.findIndex((x) => x.controller === c);
      if (i < 0) return;
      const [entry] = controllers.splice(i, 1);
      await entry?.controller.stop();
      await entry?.bus.close();
    },
    async close() {
      for (const c of [...controllers]) await env.stopController(c.controller);
      await player.stop();
      await kube.stop();
      await nats.cleanup();
    },
  };
  return env;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined, or throws with `what` after the timeout. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${lastErr === undefined ? '' : `: ${String(lastErr)}`}`);
}

export interface ExperimentJson {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; finalizers?: string[] };
  /** Read through the status schema (api/status.ts), as the controller reads it. */
  status?: EnergyExperimentStatus;
}

export async function getExperiment(env: TestEnv, ns: string, name: string): Promise<ExperimentJson | undefined> {
  const r = await env.kube.kubectl(['get', 'ee', name, '-n', ns, '-o', 'json']);
  if (r.code !== 0) return undefined;
  const raw = JSON.parse(r.stdout) as { metadata: ExperimentJson['metadata']; status?: unknown };
  return {
    metadata: raw.metadata,
    ...(raw.status !== undefined ? { status: EnergyExperimentStatusSchema.parse(raw.status) } : {}),
  };
}

export function condition(
  e: ExperimentJson | undefined,
  type: string,
): { status: string; reason: string; message: string } | undefined {
  return e?.status?.conditions?.find((c) => c.type === type);
}

/** A small, fast experiment: one pytorch backend, `configs` sweep points x `cycles`. */
export function manifest(
  name: string,
  ns: string,
  o: {
    configs?: number;
    cycles?: number;
    retries?: number;
    parallelism?: number;
    requests?: number;
    replicas?: number;
    extra?: string;
  } = {},
): string {
  const points = Array.from({ length: o.configs ?? 1 }, (_, i) => i + 1).join(', ');
  return `apiVersion: llem.dev/v1alpha1
kind: EnergyExperiment
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  model:
    name: test/tiny
    source:
      random: {}
  backends:
    - type: pytorch
  sweep:
    axes:
      pytorch.maxBatchSize: [${points}]
  workload:
    dataset:
      synthetic:
        inputTokens: { distribution: fixed, mean: 16 }
        outputTokens: { distribution: fixed, mean: 16 }
    requests: ${o.requests ?? 12}
    concurrency: 4
  measurement:
    cycles: ${o.cycles ?? 1}
    warmupRequests: 0
    baselineSeconds: 0
    minWindowSeconds: 0
    cooldownSeconds: 0
  placement:
    parallelism: ${o.parallelism ?? 2}
    replicas: ${o.replicas ?? 1}
  policy:
    retries: ${o.retries ?? 2}
    runTimeoutSeconds: 120
${o.extra ?? ''}`;
}

export async function createNamespace(env: TestEnv, ns: string): Promise<void> {
  await env.kube.kubectlOk(['create', 'namespace', ns]);
}
