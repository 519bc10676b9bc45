// The backend server for one configuration, as the pod runs it: what follows `llem agent --`, plus
// its environment and start-up files. Rendered by the same launchers local mode uses
// (lib/backends), with the paths inside the images; every server listens on 127.0.0.1:SERVER_PORT
// inside the pod, where the agent talks to it.
import { resolve } from 'node:path';
import type { Configuration } from '../../api/matrix.ts';
import { renderBackendLaunch } from './launch.ts';
import type { BackendLaunch, LaunchContext } from './types.ts';

export const SERVER_PORT = 8000;

// The pod/image path contract, in one place: controller/pods.ts renders pods from these, the
// Dockerfiles under images/ are checked against them (tests/unit/images/contract.test.ts), and the
// real-node tests inspect the built images' filesystems against them (tests/e2e-node).
/** Where the agent image (images/agent/Dockerfile) keeps its payload: bin/node, bin/llem.mjs, dist/. */
export const AGENT_PAYLOAD_DIR = '/opt/llem';
/**
 * Where the shared volume holding the agent is mounted, in the init container (which copies the
 * payload into it) and in the backend container (which runs the agent from it). Deliberately not
 * under /opt/llem: a mount hides what the backend image keeps below it (the PyTorch server).
 */
export const AGENT_DIR = '/llem';
/** Node.js and the bundled CLI inside the shared volume: any backend image runs them, no shell needed. */
export const AGENT_NODE = `${AGENT_DIR}/bin/node`;
export const AGENT_ENTRY = `${AGENT_DIR}/bin/llem.mjs`;
/** argv prefix that runs `llem` from the shared volume in the backend container. */
export const AGENT_LLEM_ARGV: readonly string[] = [AGENT_NODE, AGENT_ENTRY];
/**
 * The init container's command, and the agent image's ENTRYPOINT: copy the payload into the volume.
 * Not `cp -a`: the image's non-root user cannot set the mode or times of the root-owned emptyDir
 * itself, so -a exits 1 after copying everything. Plain -R keeps the execute bits (bin/node).
 */
export const AGENT_INSTALL_COMMAND: readonly string[] = ['/bin/cp', '-R', `${AGENT_PAYLOAD_DIR}/.`, `${AGENT_DIR}/`];
/** Where a `pvc` model source is mounted in the backend container. */
export const MODEL_DIR = '/models';
/** workload.dataset.configMapRef's key, mounted read-only in the backend container (the agent reads it). */
export const DATASET_DIR = '/etc/llem/dataset';
export const DATASET_FILE = `${DATASET_DIR}/prompts.jsonl`;
/** Trace and conversation files on a PVC are mounted under WORKLOAD_DIR/<kind> (read-only). */
export const WORKLOAD_DIR = '/etc/llem/workload';

/** Where the agent finds a trace / conversations file: the local path, or its place in the mounted claim. */
export function workloadFilePath(
  kind: 'trace' | 'conversations',
  src: { file?: string | undefined; pvc?: { path: string } | undefined },
): string {
  if (src.pvc !== undefined) return `${WORKLOAD_DIR}/${kind}/${src.pvc.path}`;
  return resolve(src.file ?? '');
}
/** The PyTorch server package inside the llem pytorch image (images/pytorch/Dockerfile). */
export const PYTORCH_SERVER_ROOT = '/opt/llem/pytorch';
/** Start-up files (trtllm-serve's extra options YAML): written by the agent before the server starts. */
export const SCRATCH_DIR = '/tmp/llem';

export function launchContext(c: Configuration): LaunchContext {
  return {
    host: '127.0.0.1',
    port: SERVER_PORT,
    gpusPerRun: c.gpusPerRun,
    modelMountPath: MODEL_DIR,
    seed: 0,
    pytorchServerRoot: PYTORCH_SERVER_ROOT,
    scratchDir: SCRATCH_DIR,
  };
}

/** The simulated server: the agent bundle's own mock OpenAI server (results labelled simulated). */
function mockLaunch(c: Configuration): BackendLaunch {
  return {
    backend: c.backend.type,
    command: AGENT_NODE,
    args: [AGENT_ENTRY, 'mock-server', '--host', '127.0.0.1', '--port', String(SERVER_PORT), '--model', c.model.name],
    env: {},
    secretFiles: [],
    files: [],
    servedModelName: c.model.name,
    baseUrl: `http://127.0.0.1:${SERVER_PORT}`,
    readiness: { path: '/health', timeoutSeconds: 120, intervalMs: 250 },
    metrics: null,
  };
}

/**
 * The backend launch of one configuration (or the mock server when simulating). Throws
 * InvalidInputError for combinations the backend cannot run.
 */
export function backendLaunch(c: Configuration, simulate: boolean): BackendLaunch {
  if (simulate) return mockLaunch(c);
  const { type, params, name, image, extraArgs, readinessTimeoutSeconds, shutdownGraceSeconds } = c.backend;
  const spec = {
    type,
    name,
    extraArgs,
    [type]: params,
    ...(image !== undefined ? { image } : {}),
    ...(readinessTimeoutSeconds !== undefined ? { readinessTimeoutSeconds } : {}),
    ...(shutdownGraceSeconds !== undefined ? { shutdownGraceSeconds } : {}),
  } as Parameters<typeof renderBackendLaunch>[0];
  return renderBackendLaunch(spec, c.model, launchContext(c));
}

/** argv of the backend server (or of the mock server when simulating). */
export function serverCommand(c: Configuration, simulate: boolean): string[] {
  const launch = backendLaunch(c, simulate);
  return [launch.command, ...launch.args];
}
