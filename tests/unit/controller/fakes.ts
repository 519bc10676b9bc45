// Fakes for the reconciler's Kubernetes side (object stores + a writer that records), shared by the
// unit tests that drive whole experiments without a server.
import type { V1Pod } from '@kubernetes/client-node';
import type { ExperimentObject, KubeWriter } from '../../../controller/kube.ts';
import { EnergyExperimentStatusSchema, type EnergyExperimentStatus } from '../../../api/status.ts';
import type { ObjectStore } from '../../../controller/informer.ts';
import { Reconciler, type ReconcilerDeps } from '../../../controller/reconciler.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';
import { rootLogger } from '../../../lib/log.ts';
import { fakeAgentRunner } from '../../support/fake-agent.ts';

export class Store<T extends { metadata?: { name?: string; namespace?: string } }> implements ObjectStore<T> {
  readonly items = new Map<string, T>();
  get(ns: string, name: string): T | undefined {
    return this.items.get(`${ns}/${name}`);
  }
  list(ns?: string): T[] {
    return [...this.items.values()].filter((o) => ns === undefined || o.metadata?.namespace === ns);
  }
  put(o: T): void {
    this.items.set(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o);
  }
}

/** The experiment's status as the controller reads it back: through the status schema. */
export function statusOf(experiments: Store<ExperimentObject>, ns = 'ns', name = 'e1'): EnergyExperimentStatus {
  return EnergyExperimentStatusSchema.parse(experiments.get(ns, name)?.status ?? {});
}

export class RecordingWriter implements KubeWriter {
  writes: string[] = [];
  events: { type: string; reason: string; message: string }[] = [];
  /** Every pod name ever created, in order (a name twice = a run re-created for the same attempt). */
  created: string[] = [];
  private rv = 1;
  constructor(
    private readonly experiments: Store<ExperimentObject>,
    private readonly pods: Store<V1Pod>,
  ) {}
  patchExperimentStatus(ns: string, name: string, status: EnergyExperimentStatus): Promise<ExperimentObject> {
    this.writes.push(`status ${ns}/${name}`);
    const o = this.experiments.get(ns, name);
    const next = { ...o, metadata: { ...o?.metadata, resourceVersion: String(++this.rv) }, status };
    this.experiments.put(next);
    return Promise.resolve(next);
  }
  setFinalizers(obj: ExperimentObject, finalizers: string[]): Promise<void> {
    this.writes.push('finalizers');
    this.experiments.put({ ...obj, metadata: { ...obj.metadata, finalizers, resourceVersion: String(++this.rv) } });
    return Promise.resolve();
  }
  deleteExperiment(): Promise<void> {
    return Promise.resolve();
  }
  createPod(pod: V1Pod): Promise<string | undefined | void> {
    this.writes.push(`create ${pod.metadata?.name ?? ''}`);
    this.created.push(pod.metadata?.name ?? '');
    this.pods.put({ ...pod, status: { phase: 'Pending' } });
    return Promise.resolve();
  }
  deletePod(ns: string, name: string): Promise<void> {
    this.writes.push(`delete ${name}`);
    this.pods.items.delete(`${ns}/${name}`);
    return Promise.resolve();
  }
  recordEvent(_obj: ExperimentObject, type: string, reason: string, message: string): Promise<void> {
    this.events.push({ type, reason, message });
    return Promise.resolve();
  }
}

/** Stores, an in-process bus and a reconciler over them (simulated pods). */
export async function controllerUnderTest(extra: Partial<ReconcilerDeps> = {}) {
  const experiments = new Store<ExperimentObject>();
  const pods = new Store<V1Pod>();
  const writer = new RecordingWriter(experiments, pods);
  const bus = new InProcessBus();
  await bus.ensureLayout();
  const log = rootLogger.child({}, { level: 'silent' });
  const streams = new BusExperimentStreams(
    bus,
    { changed: () => undefined, applied: () => undefined, lag: () => undefined },
    log,
    50,
  );
  const reconciler = new Reconciler({
    experiments,
    pods,
    writer,
    streams,
    log,
    podOptions: { agentImage: 'a', backendImages: {}, agentEnv: [], simulate: true },
    ...extra,
  });
  const agent = fakeAgentRunner(bus);
  /** Every pod not yet run: its fake agent publishes a complete sequence and the pod succeeds. */
  const runPods = async (opts: { oomFirstAttempt?: boolean } = {}): Promise<number> => {
    let n = 0;
    for (const p of pods.list()) {
      if (p.status?.phase !== 'Pending') continue;
      if (opts.oomFirstAttempt === true && p.metadata?.labels?.['llem.dev/attempt'] === '0') {
        const terminated = { exitCode: 137, reason: 'OOMKilled' };
        pods.put({
          ...p,
          status: {
            phase: 'Failed',
            containerStatuses: [
              { name: 'backend', ready: false, restartCount: 0, image: '', imageID: '', state: { terminated } },
            ],
          },
        });
        continue;
      }
      const env = Object.fromEntries((p.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? '']));
      await agent({ pod: p, env, argv: [] });
      pods.put({ ...p, status: { phase: 'Succeeded' } });
      n += 1;
    }
    return n;
  };
  return { experiments, pods, writer, bus, streams, reconciler, runPods, log };
}

export function experimentWith(spec: Record<string, unknown>, name = 'e1', uid = 'uid-1'): ExperimentObject {
  return {
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name, namespace: 'ns', uid, generation: 1, resourceVersion: '1' },
    spec,
  };
}

export async function settle(ms = 100): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}
