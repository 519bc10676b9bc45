// Test support for the Helm chart: finds the helm binary built by scripts/ensure-deps.d/helm.sh,
// renders helm/llem for the named value scenarios and parses the manifests.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO = resolve(import.meta.dirname, '..', '..', '..');
export const CHART_DIR = join(REPO, 'helm', 'llem');
export const RELEASE = 'llem';
export const RELEASE_NAMESPACE = 'llem-system';

/** The three value sets every chart test covers; files live in the chart's ci/ folder. */
export const SCENARIOS = {
  default: [] as string[],
  'external-nats': ['-f', join(CHART_DIR, 'ci', 'external-nats-values.yaml')],
  minimal: ['-f', join(CHART_DIR, 'ci', 'minimal-values.yaml')],
} as const;
export type Scenario = keyof typeof SCENARIOS;
export const SCENARIO_NAMES = Object.keys(SCENARIOS) as Scenario[];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function helmBinary(): string | null {
  const bin = process.env['LLEM_HELM_BIN'] ?? join(homedir(), '.cache', 'llem', 'helm', 'helm');
  return existsSync(bin) ? bin : null;
}

export function helmSkipReason(): string | undefined {
  return helmBinary() === null ? 'helm not built: run bash scripts/ensure-deps.d/helm.sh' : undefined;
}

export function runCommand(bin: string, args: string[], input?: string): Promise<CommandResult> {
  return new Promise((res) => {
    const child = execFile(bin, args, { maxBuffer: 64 << 20, env: helmEnv() }, (err, stdout, stderr) => {
      const code =
        err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end(input);
  });
}

/** helm must not read or write the user's real config, cache or repositories. */
function helmEnv(): NodeJS.ProcessEnv {
  const base = join(REPO, '.cache', 'helm-test');
  return {
    ...process.env,
    HELM_CONFIG_HOME: join(base, 'config'),
    HELM_CACHE_HOME: join(base, 'cache'),
    HELM_DATA_HOME: join(base, 'data'),
  };
}

export function helm(args: string[]): Promise<CommandResult> {
  const bin = helmBinary();
  if (bin === null) throw new Error(helmSkipReason());
  return runCommand(bin, args);
}

/** `helm template` for a scenario plus extra flags; throws with helm's stderr on failure. */
export async function renderText(scenario: Scenario, extra: string[] = []): Promise<string> {
  const r = await helm([
    'template',
    RELEASE,
    CHART_DIR,
    '--namespace',
    RELEASE_NAMESPACE,
    ...SCENARIOS[scenario],
    ...extra,
  ]);
  if (r.code !== 0) throw new Error(`helm template (${scenario}) failed: ${r.stderr.trim()}`);
  return r.stdout;
}

export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message ?? ''}`);
    const value: unknown = doc.toJS();
    if (value !== null && typeof value === 'object') out.push(value as K8sObject);
  }
  return out;
}

export async function render(scenario: Scenario, extra: string[] = []): Promise<K8sObject[]> {
  return parseManifests(await renderText(scenario, extra));
}

export function findObject(objs: K8sObject[], kind: string, nameSuffix = ''): K8sObject {
  const hit = objs.find((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  if (hit === undefined) throw new Error(`no ${kind} named *${nameSuffix} in the rendered chart`);
  return hit;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** Every (group, resource, verb) triple the rendered Roles and ClusterRoles grant, as "group/resource:verb". */
export function grantedPermissions(objs: K8sObject[]): Set<string> {
  const rules = objs
    .filter((x) => x.kind === 'Role' || x.kind === 'ClusterRole')
    .flatMap((o) => (o['rules'] ?? []) as PolicyRule[]);
  const triples = rules.flatMap((rule) =>
    (rule.apiGroups ?? ['']).flatMap((g) =>
      (rule.resources ?? []).flatMap((r) => rule.verbs.map((v) => `${g}/${r}:${v}`)),
    ),
  );
  return new Set(triples);
}

/** The chart's nats.conf with the port, store and pid file moved into a test's own places. */
export function natsConfigForTest(chartConf: string, port: number, storeDir: string): string {
  return chartConf
    .replace(/^port: 4222$/m, `port: ${port}`)
    .replace(/^http_port: .*$/m, '')
    .replace('store_dir: /data/jetstream', `store_dir: "${storeDir}"`)
    .replace('pid_file: /var/run/nats/nats.pid', `pid_file: "${join(dirname(storeDir), 'nats.pid')}"`);
}

/**
 * The NATS configuration the chart's StatefulSet runs: the ConfigMap's nats.conf passed through the
 * `trust` init container's own command (`llem nats-server-config`, args as rendered), with the
 * auth Secret's issuerSecret in its environment as the kubelet would resolve it.
 */
export async function trustedNatsConfig(objs: K8sObject[], issuerSecret: string): Promise<string> {
  const { mkdtemp, readFile, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { main } = await import('../../../cli/commands/nats-server-config.ts');
  const conf = String((findObject(objs, 'ConfigMap', '-nats-config')['data'] as Record<string, string>)['nats.conf']);
  const sts = findObject(objs, 'StatefulSet', '-nats')['spec'] as {
    template: { spec: { initContainers?: { name: string; args: string[] }[] } };
  };
  const init = sts.template.spec.initContainers?.find((c) => c.name === 'trust');
  if (init === undefined) throw new Error('the NATS StatefulSet has no trust init container');
  const dir = await mkdtemp(join(tmpdir(), 'llem-nats-trust-'));
  try {
    await writeFile(join(dir, 'base.conf'), conf);
    const args = init.args
      .slice(1)
      .map((a) =>
        a === '/etc/nats-config/nats.conf'
          ? join(dir, 'base.conf')
          : a === '/etc/nats/nats.conf'
            ? join(dir, 'nats.conf')
            : a,
      );
    const saved = process.env['LLEM_NATS_ISSUER_SECRET'];
    process.env['LLEM_NATS_ISSUER_SECRET'] = issuerSecret;
    try {
      const code = await main(args);
      if (code !== 0) throw new Error(`llem nats-server-config exited ${code}`);
    } finally {
      if (saved === undefined) delete process.env['LLEM_NATS_ISSUER_SECRET'];
      else process.env['LLEM_NATS_ISSUER_SECRET'] = saved;
    }
    return await readFile(join(dir, 'nats.conf'), 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
