// llem on the real node: install helm/llem with the locally built images, read an experiment's
// results artifact from the chart's NATS (through its Service IP, which kube-proxy routes on the host).
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { connect, credsAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { BusIssuer } from '../../lib/bus/identity.ts';
import { helmBin, KUBECONFIG, kubectl, kubectlJson, kubectlOk, REPO, shOk, type BuiltImage } from './real-node.ts';

export interface ExperimentStatus {
  phase?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
  best?: { joulesPerToken?: number; configurationId?: string };
  artifact?: { uri?: string };
  progress?: { summary?: string };
}

const PV = 'llem-e2e-nats-data';

function split(ref: string): [string, string] {
  const at = ref.lastIndexOf(':');
  return [ref.slice(0, at), ref.slice(at + 1)];
}

/** helm install of helm/llem (controller simulating GPUs, the chart's NATS) with the local images; waits for both. */
export async function installChart(
  images: Record<string, BuiltImage>,
  namespace: string,
  scratch: string,
  extra: string[] = [],
): Promise<void> {
  const need = (n: string): string => {
    const ref = images[n]?.ref;
    if (ref === undefined) throw new Error(`image ${n} was not built`);
    return ref;
  };
  // The chart's NATS asks for a volume; this node has no provisioner, so a hostPath PV stands by.
  const data = join(scratch, 'nats-data');
  mkdirSync(data, { recursive: true });
  chmodSync(data, 0o777);
  await kubectl(['delete', 'pv', PV, '--wait=true', '--timeout=60s']);
  await kubectlOk(['apply', '-f', '-'], {
    input: `apiVersion: v1
kind: PersistentVolume
metadata: { name: ${PV} }
spec:
  capacity: { storage: 10Gi }
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: { path: ${data}, type: Directory }
`,
  });
  const [ctrlRepo, ctrlTag] = split(need('controller'));
  const [agentRepo, agentTag] = split(need('agent'));
  const [natsRepo, natsTag] = split(need('nats'));
  await shOk(helmBin(), [
    '--kubeconfig',
    KUBECONFIG,
    'install',
    'llem',
    join(REPO, 'helm', 'llem'),
    '--namespace',
    namespace,
    '--create-namespace',
    '--wait',
    '--timeout',
    '6m',
    '--set',
    `image.repository=${ctrlRepo}`,
    '--set',
    `image.tag=${ctrlTag}`,
    '--set',
    'image.pullPolicy=Never',
    '--set',
    `agentImage.repository=${agentRepo}`,
    '--set',
    `agentImage.tag=${agentTag}`,
    '--set',
    `backendImages.pytorch=${need('pytorch')}`,
    '--set',
    `nats.image.repository=${natsRepo}`,
    '--set',
    `nats.image.tag=${natsTag}`,
    '--set',
    'nats.image.pullPolicy=Never',
    '--set',
    'controller.simulate=true',
    ...extra,
  ]);
}

export async function uninstallChart(namespace: string): Promise<void> {
  await shOk(helmBin(), [
    '--kubeconfig',
    KUBECONFIG,
    'uninstall',
    'llem',
    '--namespace',
    namespace,
    '--wait',
    '--timeout',
    '3m',
  ]).catch(() => undefined);
  await kubectl(['delete', 'namespace', namespace, '--wait=true', '--timeout=180s']);
  await kubectl(['delete', 'pv', PV, '--wait=true', '--timeout=60s']);
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}

async function secretValue(namespace: string, ref: { name: string; key: string }): Promise<string> {
  const b64 = await kubectlOk(['-n', namespace, 'get', 'secret', ref.name, '-o', `jsonpath={.data.${ref.key}}`]);
  return Buffer.from(b64, 'base64').toString();
}

/**
 * How the harness authenticates to the chart's NATS, taken from the controller's own Deployment. With the
 * chart's NATS (operator mode, ADR 0011) that is LLEM_NATS_ISSUER_SECRET: as cluster admin the harness reads
 * the Secret the chart made and signs the controller's credentials from it, exactly as the controller does,
 * so the server's trust (operator, account, no anonymous user) is left as the chart set it. A controller
 * pointed at an external NATS by user/password keeps that path.
 */
export async function natsAuth(namespace: string): Promise<Partial<NodeConnectionOptions>> {
  const dep = await kubectlJson<{ spec: { template: { spec: { containers: { env?: EnvVar[] }[] } } } }>([
    '-n',
    namespace,
    'get',
    'deploy',
    'llem-controller',
  ]);
  const env = dep.spec.template.spec.containers[0]?.env ?? [];
  const ref = (name: string): { name: string; key: string } | undefined =>
    env.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
  const issuerRef = ref('LLEM_NATS_ISSUER_SECRET');
  if (issuerRef !== undefined) {
    const creds = new BusIssuer(await secretValue(namespace, issuerRef)).controllerCreds();
    return { authenticator: credsAuthenticator(new TextEncoder().encode(creds)) };
  }
  const user = env.find((e) => e.name === 'LLEM_NATS_USER')?.value;
  const passRef = ref('LLEM_NATS_PASSWORD');
  const pass = passRef === undefined ? undefined : await secretValue(namespace, passRef);
  return { ...(user !== undefined ? { user } : {}), ...(pass !== undefined ? { pass } : {}) };
}

/** The results.json the controller wrote to the chart's NATS object store (status.artifact.uri). */
export async function fetchResults(namespace: string, status: ExperimentStatus): Promise<string> {
  const uri = status.artifact?.uri ?? '';
  const m = /^nats-obj:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (m === null) throw new Error(`no results artifact in status: ${JSON.stringify(status)}`);
  const [, bucket = '', name = ''] = m;
  const svc = await kubectlJson<{ spec: { clusterIP: string } }>(['-n', namespace, 'get', 'svc', 'llem-nats']);
  const nc = await connect({ servers: `nats://${svc.spec.clusterIP}:4222`, ...(await natsAuth(namespace)) });
  try {
    const os = await new Objm(jetstream(nc)).open(bucket);
    const blob = await os.getBlob(name);
    if (blob === null) throw new Error(`${uri}: not in the object store`);
    return new TextDecoder().decode(blob);
  } finally {
    await nc.close();
  }
}
