// `llem controller`: the Kubernetes controller (informers, work queue, leader election, metrics).
// Flags override the environment the Helm chart sets; everything is parsed once, with zod.
import { parseArgs } from 'node:util';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { Controller } from '../../controller/index.ts';
import { openNatsBus } from '../../lib/bus/index.ts';
import { InvalidInputError } from '../../lib/errors.ts';
import { rootLogger } from '../../lib/log.ts';

const USAGE = `usage: llem controller [options]

Runs the EnergyExperiment controller against the cluster in --kubeconfig (default: in-cluster,
then $KUBECONFIG / ~/.kube/config).

  --kubeconfig FILE              kubeconfig to use
  --namespace NS                 watch one namespace (default: all; env LLEM_WATCH_NAMESPACE)
  --nats-url URL                 NATS JetStream server(s), comma-separated (env LLEM_NATS_URL)
  --agent-nats-url URL           NATS URL the agent pods use (default: --nats-url)
  --agent-image IMAGE            image holding the agent bundle (env LLEM_AGENT_IMAGE)
  --backend-image TYPE=IMAGE     default image per backend type (repeatable; env LLEM_BACKEND_IMAGES=a=x,b=y)
  --simulate                     agent pods use the simulated GPU and mock server (demos, tests)
  --workers N                    concurrent reconciles (default 4)
  --metrics-bind-address H:P     /metrics /healthz /readyz listener (default 0.0.0.0:8080)
  --leader-elect / --no-leader-elect   Lease-based leader election (default on)
  --leader-election-namespace NS (default: env POD_NAMESPACE or "default")
  --lease-name NAME              (default llem-controller)
`;

const ConfigSchema = z.object({
  kubeconfig: z.string().optional(),
  namespace: z.string().min(1).optional(),
  natsUrl: z.string({ error: 'required: pass --nats-url URL or set LLEM_NATS_URL' }).min(1, 'required: pass --nats-url URL or set LLEM_NATS_URL'),
  agentNatsUrl: z.string().min(1).optional(),
  agentImage: z.string().min(1).default('ghcr.io/llenergymeasure/llem-agent:latest'),
  backendImages: z.record(z.string(), z.string()).default({}),
  simulate: z.boolean().default(false),
  workers: z.coerce.number().int().min(1).max(64).default(4),
  metricsBindAddress: z.string().regex(/^[^:]*:\d+$/, 'must be HOST:PORT').default('0.0.0.0:8080'),
  leaderElect: z.boolean().default(true),
  leaderElectionNamespace: z.string().min(1).default('default'),
  leaseName: z.string().min(1).default('llem-controller'),
});

function pairs(list: string[]): Record<string, string> {
  return Object.fromEntries(list.filter((s) => s.includes('=')).map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]));
}

function parse(argv: string[], env: NodeJS.ProcessEnv): z.output<typeof ConfigSchema> | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowNegative: true,
    options: {
      kubeconfig: { type: 'string' }, namespace: { type: 'string' }, 'nats-url': { type: 'string' }, 'agent-nats-url': { type: 'string' },
      'agent-image': { type: 'string' }, 'backend-image': { type: 'string', multiple: true }, simulate: { type: 'boolean' },
      workers: { type: 'string' }, 'metrics-bind-address': { type: 'string' }, 'leader-elect': { type: 'boolean' },
      'leader-election-namespace': { type: 'string' }, 'lease-name': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const raw = {
    kubeconfig: values.kubeconfig,
    namespace: values.namespace ?? env['LLEM_WATCH_NAMESPACE'],
    natsUrl: values['nats-url'] ?? env['LLEM_NATS_URL'] ?? '',
    agentNatsUrl: values['agent-nats-url'] ?? env['LLEM_AGENT_NATS_URL'],
    agentImage: values['agent-image'] ?? env['LLEM_AGENT_IMAGE'],
    backendImages: { ...pairs((env['LLEM_BACKEND_IMAGES'] ?? '').split(',')), ...pairs(values['backend-image'] ?? []) },
    simulate: values.simulate ?? (env['LLEM_SIMULATE'] === '1' || env['LLEM_SIMULATE'] === 'true'),
    workers: values.workers,
    metricsBindAddress: values['metrics-bind-address'],
    leaderElect: values['leader-elect'],
    leaderElectionNamespace: values['leader-election-namespace'] ?? env['POD_NAMESPACE'],
    leaseName: values['lease-name'],
  };
  const parsed = ConfigSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined && v !== '')));
  if (!parsed.success) {
    throw new InvalidInputError(parsed.error.issues.map((i) => ({ file: 'llem controller', path: i.path.join('.'), message: i.message })));
  }
  return parsed.data;
}

function kubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file !== undefined) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

export async function main(argv: string[]): Promise<number> {
  const config = parse(argv, process.env);
  if (config === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = rootLogger.child({ component: 'controller' });
  const servers = config.natsUrl.split(',').map((s) => s.trim());
  const bus = await openNatsBus({ servers, name: `llem-controller-${hostname()}` }, '--nats-url');
  const [host = '0.0.0.0', port = '8080'] = config.metricsBindAddress.split(':');
  let lost = false;
  const controller = new Controller({
    kubeConfig: kubeConfig(config.kubeconfig),
    bus,
    ...(config.namespace !== undefined ? { namespace: config.namespace } : {}),
    workers: config.workers,
    podOptions: {
      agentImage: config.agentImage,
      backendImages: config.backendImages,
      agentEnv: [{ name: 'LLEM_NATS_URL', value: config.agentNatsUrl ?? config.natsUrl }],
      simulate: config.simulate,
    },
    leaderElection: { enabled: config.leaderElect, namespace: config.leaderElectionNamespace, name: config.leaseName },
    probe: { host, port: Number(port) },
    log,
    onLostLeadership: () => {
      lost = true;
      process.kill(process.pid, 'SIGTERM');
    },
  });
  await controller.start();
  log.info({ identity: controller.identity, metricsPort: controller.probePort() }, 'controller started');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await controller.stop();
  await bus.close();
  return lost ? 1 : 0;
}
