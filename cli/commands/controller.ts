// `llem controller`: the Kubernetes controller (informers, work queue, leader election, metrics).
// Flags override the environment the Helm chart sets; everything is parsed once, with zod.
import { agentTelemetryEnv } from '../../lib/telemetry/index.ts';
import { parseArgs } from 'node:util';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { Controller } from '../../controller/index.ts';
import {
  BusIssuer,
  natsOptionsFromEnv,
  natsUrlProblem,
  openNatsBus,
  type NatsBus,
  type NatsEnv,
} from '../../lib/bus/index.ts';
import { InvalidInputError, isLlemError, LlemError } from '../../lib/errors.ts';
import { rootLogger, type Logger } from '../../lib/log.ts';

/**
 * Reply subjects of the controller's connection. Agents may subscribe to `_INBOX.>` (their own
 * replies); a separate prefix keeps the messages the controller pulls from the stream out of reach.
 */
export const CONTROLLER_INBOX_PREFIX = '_INBOX_llem_controller';

const USAGE = `usage: llem controller [options]

Runs the EnergyExperiment controller against the cluster in --kubeconfig (default: in-cluster,
then $KUBECONFIG / ~/.kube/config).

  --kubeconfig FILE              kubeconfig to use
  --namespace NS                 watch one namespace (default: all; env LLEM_WATCH_NAMESPACE)
  --nats-url URL                 NATS JetStream server(s), comma-separated (env LLEM_NATS_URL)
                                 credentials and TLS: env LLEM_NATS_USER + LLEM_NATS_PASSWORD |
                                 LLEM_NATS_TOKEN | LLEM_NATS_CREDS_FILE, LLEM_NATS_CA_FILE,
                                 LLEM_NATS_CERT_FILE + LLEM_NATS_KEY_FILE (as for the agent), or
                                 LLEM_NATS_ISSUER_SECRET: sign its own and every run's credentials
                                 (ADR 0011; the chart's default)
  --agent-nats-url URL           NATS URL the agent pods use (default: --nats-url)
  --agent-image IMAGE            image holding the agent bundle (env LLEM_AGENT_IMAGE)
  --backend-image TYPE=IMAGE     default image per backend type (repeatable; env LLEM_BACKEND_IMAGES=a=x,b=y)
  --simulate                     agent pods use the simulated GPU and mock server (demos, tests)
  --gpu-control                  run pods may change GPU power limits / clocks (spec.gpu; also needs
                                 spec.gpu.allowDeviceControl; docs/security.md). Env LLEM_GPU_CONTROL=1
  --workers N                    concurrent reconciles (default 4)
  --metrics-bind-address H:P     /metrics /healthz /readyz listener (default 0.0.0.0:8080)
  --leader-elect / --no-leader-elect   Lease-based leader election (default on)
  --leader-election-namespace NS (default: env POD_NAMESPACE or "default")
  --lease-name NAME              (default llem-controller)
  --startup-timeout-seconds N    give up (exit 1) if NATS set-up and the informers' first list take
                                 longer (default 120)
`;

const ConfigSchema = z.object({
  kubeconfig: z.string().optional(),
  namespace: z.string().min(1).optional(),
  natsUrl: z
    .string({ error: 'required: pass --nats-url URL or set LLEM_NATS_URL' })
    .min(1, 'required: pass --nats-url URL or set LLEM_NATS_URL'),
  agentNatsUrl: z.string().min(1).optional(),
  agentImage: z.string().min(1).default('ghcr.io/llenergymeasure/llem-agent:latest'),
  backendImages: z.record(z.string(), z.string()).default({}),
  simulate: z.boolean().default(false),
  gpuControl: z.boolean().default(false),
  workers: z.coerce.number().int().min(1).max(64).default(4),
  metricsBindAddress: z
    .string()
    .regex(/^[^:]*:\d+$/, 'must be HOST:PORT')
    .default('0.0.0.0:8080'),
  leaderElect: z.boolean().default(true),
  leaderElectionNamespace: z.string().min(1).default('default'),
  leaseName: z.string().min(1).default('llem-controller'),
  startupTimeoutSeconds: z.coerce.number().positive().default(120),
});

type ControllerConfig = z.output<typeof ConfigSchema> & { nats: NatsEnv; issuer?: BusIssuer };

/** LLEM_NATS_ISSUER_SECRET: the controller signs credentials itself, so no other method may be set. */
function issuerFrom(env: NodeJS.ProcessEnv, nats: NatsEnv): BusIssuer | undefined {
  const secret = env['LLEM_NATS_ISSUER_SECRET'] ?? '';
  if (secret === '') return undefined;
  if (nats.user !== undefined || nats.token !== undefined || nats.credsFile !== undefined) {
    throw new InvalidInputError([
      {
        file: 'LLEM_NATS_ISSUER_SECRET',
        path: '',
        message:
          "is set together with LLEM_NATS_USER, LLEM_NATS_TOKEN or LLEM_NATS_CREDS_FILE: the issuer signs the controller's own credentials; unset the others",
      },
    ]);
  }
  return new BusIssuer(secret);
}

/** TYPE=IMAGE pairs; anything else is an input error naming where it came from (never dropped silently). */
function pairs(list: string[], source: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of list.map((x) => x.trim()).filter((x) => x !== '')) {
    const i = s.indexOf('=');
    if (i <= 0)
      throw new InvalidInputError([
        { file: 'llem controller', path: source, message: `"${s}" is not TYPE=IMAGE (e.g. vllm=registry/vllm:0.11)` },
      ]);
    if (i < s.length - 1) out[s.slice(0, i)] = s.slice(i + 1); // TYPE= : no default image for that type
  }
  return out;
}

/** Reads the kubeconfig before anything connects: a missing or malformed file is an input error. */
function kubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file === undefined) {
    kc.loadFromDefault();
    return kc;
  }
  try {
    kc.loadFromFile(file);
  } catch (err) {
    throw new InvalidInputError(
      [
        {
          file,
          path: '--kubeconfig',
          message: `cannot load (${(err as Error).message.split('\n')[0] ?? ''}); give a readable kubeconfig file`,
        },
      ],
      { cause: err },
    );
  }
  return kc;
}

export function parse(argv: string[], env: NodeJS.ProcessEnv): ControllerConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowNegative: true,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'nats-url': { type: 'string' },
      'agent-nats-url': { type: 'string' },
      'agent-image': { type: 'string' },
      'backend-image': { type: 'string', multiple: true },
      simulate: { type: 'boolean' },
      'gpu-control': { type: 'boolean' },
      workers: { type: 'string' },
      'metrics-bind-address': { type: 'string' },
      'leader-elect': { type: 'boolean' },
      'leader-election-namespace': { type: 'string' },
      'lease-name': { type: 'string' },
      'startup-timeout-seconds': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const raw = {
    kubeconfig: values.kubeconfig,
    namespace: values.namespace ?? env['LLEM_WATCH_NAMESPACE'],
    natsUrl: values['nats-url'] ?? env['LLEM_NATS_URL'] ?? '',
    agentNatsUrl: values['agent-nats-url'] ?? env['LLEM_AGENT_NATS_URL'],
    agentImage: values['agent-image'] ?? env['LLEM_AGENT_IMAGE'],
    backendImages: {
      ...pairs((env['LLEM_BACKEND_IMAGES'] ?? '').split(','), 'LLEM_BACKEND_IMAGES'),
      ...pairs(values['backend-image'] ?? [], '--backend-image'),
    },
    simulate: values.simulate ?? (env['LLEM_SIMULATE'] === '1' || env['LLEM_SIMULATE'] === 'true'),
    gpuControl: values['gpu-control'] ?? (env['LLEM_GPU_CONTROL'] === '1' || env['LLEM_GPU_CONTROL'] === 'true'),
    workers: values.workers,
    metricsBindAddress: values['metrics-bind-address'],
    leaderElect: values['leader-elect'],
    leaderElectionNamespace: values['leader-election-namespace'] ?? env['POD_NAMESPACE'],
    leaseName: values['lease-name'],
    startupTimeoutSeconds: values['startup-timeout-seconds'],
  };
  const parsed = ConfigSchema.safeParse(
    Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined && v !== '')),
  );
  if (!parsed.success) {
    throw new InvalidInputError(
      parsed.error.issues.map((i) => ({ file: 'llem controller', path: i.path.join('.'), message: i.message })),
    );
  }
  // The flag wins over LLEM_NATS_URL; credentials and TLS come from the same variables the agent reads.
  const nats = natsOptionsFromEnv({ ...env, LLEM_NATS_URL: parsed.data.natsUrl });
  if (nats === null)
    throw new InvalidInputError([
      { file: 'llem controller', path: 'natsUrl', message: 'required: pass --nats-url URL or set LLEM_NATS_URL' },
    ]);
  const agentUrlProblem = parsed.data.agentNatsUrl === undefined ? null : natsUrlProblem(parsed.data.agentNatsUrl);
  if (agentUrlProblem !== null)
    throw new InvalidInputError([{ file: 'llem controller', path: 'agentNatsUrl', message: agentUrlProblem }]);
  const issuer = issuerFrom(env, nats);
  return { ...parsed.data, nats, ...(issuer === undefined ? {} : { issuer }) };
}

/** Rejects with an LlemError after `ms`; the timer never keeps the process alive. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LlemError('LLEM_E_KUBE', `${what} did not finish within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function connect(config: ControllerConfig, log: Logger): Promise<NatsBus> {
  const { servers, ...auth } = config.nats;
  const authMethod =
    config.issuer !== undefined
      ? 'issuer'
      : auth.credsFile !== undefined
        ? 'creds'
        : auth.token !== undefined
          ? 'token'
          : auth.user !== undefined
            ? `user ${auth.user}`
            : 'none';
  log.info({ servers, auth: authMethod, tls: auth.tls !== undefined }, 'connecting to NATS');
  const creds = config.issuer === undefined ? {} : { creds: config.issuer.controllerCreds() };
  return await openNatsBus(
    { name: `llem-controller-${hostname()}`, ...auth, ...creds, servers, inboxPrefix: CONTROLLER_INBOX_PREFIX },
    'LLEM_NATS_* / --nats-url',
  );
}

function controllerFor(
  config: ControllerConfig,
  kc: KubeConfig,
  bus: NatsBus,
  log: Logger,
  onLost: () => void,
): Controller {
  const [host = '0.0.0.0', port = '8080'] = config.metricsBindAddress.split(':');
  return new Controller({
    kubeConfig: kc,
    bus,
    ...(config.namespace !== undefined ? { namespace: config.namespace } : {}),
    workers: config.workers,
    podOptions: {
      agentImage: config.agentImage,
      backendImages: config.backendImages,
      agentEnv: [{ name: 'LLEM_NATS_URL', value: config.agentNatsUrl ?? config.natsUrl }, ...agentTelemetryEnv()],
      simulate: config.simulate,
      gpuControl: config.gpuControl,
      ...(config.issuer === undefined ? {} : { busIssuer: config.issuer }),
    },
    leaderElection: { enabled: config.leaderElect, namespace: config.leaderElectionNamespace, name: config.leaseName },
    probe: { host, port: Number(port) },
    log,
    onLostLeadership: onLost,
  });
}

/** Start-up failed: say why, release what was opened, and make sure the process ends. */
async function abandon(
  err: unknown,
  log: Logger,
  controller: Controller | undefined,
  bus: NatsBus | undefined,
): Promise<number> {
  const permission = /permission|authori[sz]ation/i.test(`${String(err)} ${String((err as Error).cause ?? '')}`);
  const hint = permission
    ? 'the NATS user lacks a permission the controller needs (JetStream API, KV, object store): check LLEM_NATS_USER / credentials'
    : 'check LLEM_NATS_URL, the NATS credentials and that JetStream is enabled';
  log.error({ err, hint }, 'controller start-up failed');
  process.stderr.write(
    `llem controller: start-up failed: ${err instanceof Error ? err.message : String(err)} (${hint})\n`,
  );
  // Whatever is still pending (a hung request, an informer list) must not keep the process alive.
  setTimeout(() => process.exit(1), 10_000).unref();
  await Promise.allSettled([controller?.stop(), bus?.close()]);
  return isLlemError(err) ? err.exitCode : 1;
}

export async function main(argv: string[]): Promise<number> {
  const config = parse(argv, process.env);
  if (config === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const kc = kubeConfig(config.kubeconfig);
  const log = rootLogger.child({ component: 'controller' });
  const startupMs = config.startupTimeoutSeconds * 1000;
  let lost = false;
  let bus: NatsBus | undefined;
  let controller: Controller | undefined;
  try {
    bus = await within(connect(config, log), startupMs, 'connecting to NATS');
    controller = controllerFor(config, kc, bus, log, () => {
      lost = true;
      process.kill(process.pid, 'SIGTERM');
    });
    await within(controller.start(), startupMs, 'controller start-up (JetStream layout, informers)');
  } catch (err) {
    return await abandon(err, log, controller, bus);
  }
  log.info({ identity: controller.identity, metricsPort: controller.probePort() }, 'controller started');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await controller.stop();
  await bus.close();
  return lost ? 1 : 0;
}
