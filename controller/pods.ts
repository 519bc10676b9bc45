// One agent pod per run replica (DESIGN.md "Pods"): an init container copies the agent out of the
// agent image into a shared volume; the backend image's container runs `llem agent -- <server>`,
// so the agent supervises the server in the same container and sees exactly its GPUs.
import type { V1Toleration, V1Container, V1EnvVar, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Configuration, PlannedRun } from '../api/matrix.ts';
import type { EnergyExperimentSpec } from '../api/spec.ts';
import { API_VERSION, KIND } from '../api/spec.ts';
import { LABEL_ATTEMPT, LABEL_EXPERIMENT, LABEL_EXPERIMENT_UID, LABEL_REPLICA, LABEL_RUN } from './kube.ts';
import {
  BACKEND_UID,
  GPU_STATE_HOST_DIR,
  gpuControlSecurityContext,
  gpuStateVolume,
  wantsGpuControl,
} from './gpu-control.ts';
import { agentConfigFor } from '../lib/backends/agent-config.ts';
import type { BackendLaunch } from '../lib/backends/index.ts';
import {
  AGENT_DIR,
  AGENT_INSTALL_COMMAND,
  AGENT_LLEM_ARGV,
  backendLaunch,
  DATASET_DIR,
  MODEL_DIR,
  WORKLOAD_DIR,
  SERVER_PORT,
} from '../lib/backends/server-command.ts';
import type { BusIssuer } from '../lib/bus/identity.ts';
import { InvalidInputError } from '../lib/errors.ts';
import { busIdentityMount } from './bus-credentials.ts';
import {
  agentSecurityContext,
  backendSecurityContext,
  escapeKubeletExpansion,
  POD_SECURITY_CONTEXT,
} from './pod-security.ts';

export interface PodBuilderOptions {
  /** Image holding the agent payload at AGENT_PAYLOAD_DIR (copied into the shared volume by the init container). */
  agentImage: string;
  /** Default image per backend type when the spec names none. */
  backendImages: Record<string, string>;
  /** Env passed to every agent (LLEM_NATS_URL and its credentials, by value or secret ref). */
  agentEnv: V1EnvVar[];
  /** Simulated GPU + mock server instead of NVML + the real server (tests, demos). */
  simulate: boolean;
  imagePullPolicy?: string;
  /** Signs each run's bus credentials (ADR 0011); the reconciler creates the Secret buildPod mounts. */
  busIssuer?: BusIssuer;
  /** Helm value gpuControl.enabled: run pods may change GPU settings (with spec.gpu.allowDeviceControl). */
  gpuControl?: boolean;
}

export interface ExperimentRef {
  name: string;
  namespace: string;
  uid: string;
}

export interface PodRequest {
  experiment: ExperimentRef;
  spec: EnergyExperimentSpec;
  configuration: Configuration;
  run: PlannedRun;
  attempt: number;
  replica: number;
}

/** A label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends. */
export function labelValue(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 63);
  return cleaned.replace(/^[^A-Za-z0-9]+/, '').replace(/[^A-Za-z0-9]+$/, '');
}

export function podName(experiment: ExperimentRef, runId: string, attempt: number, replica: number): string {
  const base =
    `${experiment.name.slice(0, 24)}-${experiment.uid.slice(0, 5)}-${runId}-a${attempt}-r${replica}`.toLowerCase();
  return base
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 253)
    .replace(/^-+|-+$/g, '');
}

export function podLabels(
  experiment: ExperimentRef,
  runId: string,
  attempt: number,
  replica: number,
): Record<string, string> {
  return {
    [LABEL_EXPERIMENT]: labelValue(experiment.name),
    [LABEL_EXPERIMENT_UID]: labelValue(experiment.uid),
    [LABEL_RUN]: labelValue(runId),
    [LABEL_ATTEMPT]: String(attempt),
    [LABEL_REPLICA]: String(replica),
    'app.kubernetes.io/managed-by': 'llem-controller',
    'app.kubernetes.io/component': 'agent',
  };
}

function modelVolumes(spec: EnergyExperimentSpec): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const pvc = spec.model.source.pvc;
  if (pvc === undefined) return { volumes: [], mounts: [] };
  return {
    volumes: [{ name: 'model', persistentVolumeClaim: { claimName: pvc.claimName, readOnly: true } }],
    mounts: [{ name: 'model', mountPath: MODEL_DIR, readOnly: true }],
  };
}

/** workload.dataset.configMapRef: the key mounted as prompts.jsonl for the agent. */
function datasetVolumes(req: PodRequest): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const ref = req.configuration.workload.dataset.configMapRef;
  if (ref === undefined) return { volumes: [], mounts: [] };
  return {
    volumes: [{ name: 'dataset', configMap: { name: ref.name, items: [{ key: ref.key, path: 'prompts.jsonl' }] } }],
    mounts: [{ name: 'dataset', mountPath: DATASET_DIR, readOnly: true }],
  };
}

/**
 * Trace / conversation files on a PVC (workload.dataset.trace.pvc, conversations.pvc): the claim mounted
 * read-only under WORKLOAD_DIR/<kind>. A local `file` does not exist in the pod: refused with its field.
 */
function workloadVolumes(req: PodRequest): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  const d = req.configuration.workload.dataset;
  for (const [kind, src] of [
    ['trace', d.trace],
    ['conversations', d.conversations],
  ] as const) {
    if (src === undefined) continue;
    if (src.pvc === undefined) {
      const message = `a local file is not in the run pod; put it on a PersistentVolumeClaim and set ${kind}.pvc (claimName, path)`;
      throw new InvalidInputError([{ file: 'spec', path: `spec.workload.dataset.${kind}.file`, message }]);
    }
    volumes.push({ name: `workload-${kind}`, persistentVolumeClaim: { claimName: src.pvc.claimName, readOnly: true } });
    mounts.push({ name: `workload-${kind}`, mountPath: `${WORKLOAD_DIR}/${kind}`, readOnly: true });
  }
  return { volumes, mounts };
}

/** The launch's environment: plain values only; a secret's file path at most (ADR 0025). */
function launchEnv(launch: BackendLaunch): V1EnvVar[] {
  return Object.entries(launch.env).map(([name, value]) => ({ name, value }));
}

/** Read-only file permissions for a mounted secret: owner read only (the kubelet may add group read for fsGroup). */
const SECRET_FILE_MODE = 0o400;

/**
 * Secrets the backend reads (the HF token) as Secret volumes: one key, mode 0400, mounted read-only. The
 * value never enters an environment, so /proc/<pid>/environ of the agent and the backend holds only the path.
 */
function secretVolumes(launch: BackendLaunch): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  for (const [i, f] of launch.secretFiles.entries()) {
    const name = `llem-secret-${i}`;
    volumes.push({
      name,
      secret: {
        secretName: f.secretName,
        items: [{ key: f.secretKey, path: f.fileName }],
        defaultMode: SECRET_FILE_MODE,
      },
    });
    mounts.push({ name, mountPath: f.mountDir, readOnly: true });
  }
  return { volumes, mounts };
}

/** The kubelet expands `$(NAME)` in args and env values: escaped, a user's text reaches the process as written. */
function literalEnv(env: V1EnvVar[]): V1EnvVar[] {
  return env.map((e) => (e.value === undefined ? e : { ...e, value: escapeKubeletExpansion(e.value) }));
}

/** Where the agent keeps restore markers, and the user it starts the backend as (pods that change GPU settings). */
function gpuControlEnv(control: boolean): V1EnvVar[] {
  if (!control) return [];
  return [
    { name: 'LLEM_GPU_STATE_DIR', value: GPU_STATE_HOST_DIR },
    { name: 'LLEM_BACKEND_UID', value: String(BACKEND_UID) },
  ];
}

function backendContainer(req: PodRequest, opts: PodBuilderOptions, mounts: V1VolumeMount[]): V1Container {
  const { spec, configuration } = req;
  const backend = configuration.backend;
  const tpl = spec.placement.podTemplate;
  const gpus = String(spec.placement.gpusPerRun);
  const launch = backendLaunch(configuration, opts.simulate);
  const control = wantsGpuControl(configuration, opts.gpuControl === true, spec);
  const config = agentConfigFor({ ...req, gpuControlAllowed: opts.gpuControl === true }, opts.simulate, launch);
  return {
    name: 'backend',
    image: backend.image ?? opts.backendImages[backend.type] ?? `llem/${backend.type}:latest`,
    ...(opts.imagePullPolicy !== undefined ? { imagePullPolicy: opts.imagePullPolicy } : {}),
    command: [...AGENT_LLEM_ARGV, 'agent', '--'],
    args: [launch.command, ...launch.args].map(escapeKubeletExpansion),
    // The user's variables first: where a name repeats the kubelet keeps the last, so llem's own win.
    env: literalEnv([
      ...tpl.env.map((e) => ({ name: e.name, value: e.value })),
      ...launchEnv(launch),
      { name: 'LLEM_AGENT_CONFIG', value: JSON.stringify(config) },
      ...opts.agentEnv,
      ...(opts.busIssuer === undefined ? [] : busIdentityMount(req.experiment, req.run.id).env),
      ...gpuControlEnv(control),
    ]),
    securityContext: control
      ? gpuControlSecurityContext()
      : backendSecurityContext(tpl.runAsNonRoot ?? backend.type !== 'tensorrt'),
    ports: [{ name: 'backend', containerPort: SERVER_PORT }],
    resources: {
      requests: { ...(tpl.resources?.requests ?? {}), ...(opts.simulate ? {} : { 'nvidia.com/gpu': gpus }) },
      limits: { ...(tpl.resources?.limits ?? {}), ...(opts.simulate ? {} : { 'nvidia.com/gpu': gpus }) },
    },
    volumeMounts: [
      { name: 'llem-agent', mountPath: AGENT_DIR, readOnly: true },
      { name: 'dshm', mountPath: '/dev/shm' },
      ...mounts,
      ...(opts.busIssuer === undefined ? [] : [busIdentityMount(req.experiment, req.run.id).mount]),
      ...(control ? [gpuStateVolume().mount] : []),
    ],
  };
}

/** Replicas of one run go to different nodes (they measure data-parallel throughput together). */
function spreadReplicas(req: PodRequest, labels: Record<string, string>): Record<string, unknown> | undefined {
  if (req.spec.placement.replicas <= 1) return undefined;
  const term = {
    labelSelector: {
      matchLabels: {
        [LABEL_RUN]: labels[LABEL_RUN],
        [LABEL_ATTEMPT]: labels[LABEL_ATTEMPT],
        [LABEL_EXPERIMENT_UID]: labels[LABEL_EXPERIMENT_UID],
      },
    },
    topologyKey: 'kubernetes.io/hostname',
  };
  return { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } };
}

/** The user's affinity with the replica-spreading term added to (not replacing) their podAntiAffinity. */
function withReplicaSpread(
  user: Record<string, unknown>,
  anti: Record<string, unknown> | undefined,
): Record<string, unknown> {
  if (anti === undefined) return user;
  const mine = anti['podAntiAffinity'] as { requiredDuringSchedulingIgnoredDuringExecution: unknown[] };
  const theirs = (user['podAntiAffinity'] ?? {}) as {
    requiredDuringSchedulingIgnoredDuringExecution?: unknown[];
  } & Record<string, unknown>;
  const required = [
    ...(theirs.requiredDuringSchedulingIgnoredDuringExecution ?? []),
    ...mine.requiredDuringSchedulingIgnoredDuringExecution,
  ];
  return { ...user, podAntiAffinity: { ...theirs, requiredDuringSchedulingIgnoredDuringExecution: required } };
}

export function buildPod(req: PodRequest, opts: PodBuilderOptions): V1Pod {
  const { experiment, spec, run, attempt, replica } = req;
  const placement = spec.placement;
  const tpl = placement.podTemplate;
  const labels = { ...(tpl.labels ?? {}), ...podLabels(experiment, run.id, attempt, replica) };
  const model = modelVolumes(spec);
  const dataset = datasetVolumes(req);
  const workload = workloadVolumes(req);
  const secrets = secretVolumes(backendLaunch(req.configuration, opts.simulate));
  const anti = spreadReplicas(req, labels);
  const affinity = withReplicaSpread(placement.affinity ?? {}, anti);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(experiment, run.id, attempt, replica),
      namespace: experiment.namespace,
      labels,
      annotations: {
        ...(tpl.annotations ?? {}),
        'llem.dev/config-hash': run.configHash,
        'llem.dev/configuration': run.configurationId,
      },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: experiment.name,
          uid: experiment.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 60,
      // Experiment pods never talk to the Kubernetes API: no token to steal.
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY_CONTEXT,
      initContainers: [
        {
          name: 'install-agent',
          image: opts.agentImage,
          ...(opts.imagePullPolicy !== undefined ? { imagePullPolicy: opts.imagePullPolicy } : {}),
          command: [...AGENT_INSTALL_COMMAND],
          volumeMounts: [{ name: 'llem-agent', mountPath: AGENT_DIR }],
          securityContext: agentSecurityContext(),
        },
      ],
      containers: [
        backendContainer(req, opts, [...model.mounts, ...dataset.mounts, ...workload.mounts, ...secrets.mounts]),
      ],
      volumes: [
        { name: 'llem-agent', emptyDir: {} },
        { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: tpl.shmSize } },
        ...model.volumes,
        ...dataset.volumes,
        ...workload.volumes,
        ...secrets.volumes,
        ...(opts.busIssuer === undefined ? [] : [busIdentityMount(experiment, run.id).volume]),
        ...(wantsGpuControl(req.configuration, opts.gpuControl === true, req.spec) ? [gpuStateVolume().volume] : []),
      ],
      nodeSelector: placement.nodeSelector,
      tolerations: placement.tolerations.map(
        (t) => Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined)) as V1Toleration,
      ),
      ...(Object.keys(affinity).length > 0 ? { affinity: affinity as never } : {}),
      ...(placement.runtimeClassName !== undefined ? { runtimeClassName: placement.runtimeClassName } : {}),
      ...(tpl.priorityClassName !== undefined ? { priorityClassName: tpl.priorityClassName } : {}),
      ...(tpl.serviceAccountName !== undefined ? { serviceAccountName: tpl.serviceAccountName } : {}),
    },
  };
}
