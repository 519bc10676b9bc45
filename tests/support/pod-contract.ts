// The pod side of the pod/image contract (lib/backends/server-command.ts), checked on a rendered
// agent pod: what a kubelet would trip over before the agent could start. Used by the node player
// (which runs no images) and by the contract tests; the real node proves the image side.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import {
  AGENT_DIR,
  AGENT_INSTALL_COMMAND,
  AGENT_LLEM_ARGV,
  DATASET_DIR,
  MODEL_DIR,
} from '../../lib/backends/server-command.ts';

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/+$/, '')}/`);
}

function mountOf(c: V1Container, volume: string): string | undefined {
  return c.volumeMounts?.find((m) => m.name === volume)?.mountPath;
}

/** Problems (empty when none) that would stop the agent pod from running the agent from its volume. */
export function agentPodContractProblems(pod: V1Pod): string[] {
  const problems: string[] = [];
  const name = pod.metadata?.name ?? '?';
  const init = pod.spec?.initContainers?.find((c) => c.name === 'install-agent');
  const backend = pod.spec?.containers[0];
  if (init === undefined)
    return [`pod ${name}: no install-agent init container, so nothing puts the agent in ${AGENT_DIR}`];
  if (backend === undefined) return [`pod ${name}: no backend container`];
  const volume = init.volumeMounts?.find((m) => m.mountPath === AGENT_DIR)?.name;
  if (volume === undefined) problems.push(`pod ${name}: install-agent does not mount a volume at ${AGENT_DIR}`);
  const initCmd = [...(init.command ?? []), ...(init.args ?? [])];
  if (JSON.stringify(initCmd) !== JSON.stringify(AGENT_INSTALL_COMMAND)) {
    problems.push(
      `pod ${name}: install-agent runs ${JSON.stringify(initCmd)}, not ${JSON.stringify(AGENT_INSTALL_COMMAND)}`,
    );
  }
  const at = volume === undefined ? undefined : mountOf(backend, volume);
  if (at !== AGENT_DIR)
    problems.push(`pod ${name}: the backend container mounts the agent volume at ${at ?? 'nowhere'}, not ${AGENT_DIR}`);
  const argv = [...(backend.command ?? []), ...(backend.args ?? [])];
  if (!AGENT_LLEM_ARGV.every((a, i) => argv[i] === a) || argv[AGENT_LLEM_ARGV.length] !== 'agent') {
    problems.push(
      `pod ${name}: the backend container runs ${JSON.stringify(argv.slice(0, 3))}, not ${JSON.stringify([...AGENT_LLEM_ARGV, 'agent'])}`,
    );
  }
  // A mount hides what the image keeps below it: env paths (PYTHONPATH ...) must not lie under one,
  // except the mounts that exist to provide those paths: model, dataset, and volumes whose whole
  // purpose is to project files (Secret, ConfigMap, projected, downward API: the bus credentials).
  const fileVolumes = new Set(
    (pod.spec?.volumes ?? [])
      .filter(
        (v) =>
          v.secret !== undefined ||
          v.configMap !== undefined ||
          v.projected !== undefined ||
          v.downwardAPI !== undefined,
      )
      .map((v) => v.name),
  );
  const mounts = (backend.volumeMounts ?? [])
    .filter((m) => !fileVolumes.has(m.name))
    .map((m) => m.mountPath)
    .filter((m) => m !== MODEL_DIR && m !== DATASET_DIR);
  for (const e of backend.env ?? []) {
    if (e.value === undefined || e.name === 'LLEM_AGENT_CONFIG') continue;
    for (const path of e.value.split(':').filter((p) => p.startsWith('/'))) {
      const hidden = mounts.find((m) => under(path, m));
      if (hidden !== undefined)
        problems.push(
          `pod ${name}: ${e.name}=${path} lies under the volume mount ${hidden}, which hides the image's files there`,
        );
    }
  }
  return problems;
}
