// The real single-node cluster (scripts/dev-cluster.sh) end to end: node start, image builds, and a
// simulated 2-configuration x 3-cycle experiment from `kubectl apply` to Succeeded. Needs root on
// Linux and leaves the machine as it found it (the node goes down at the end unless it was up).
//
//   node --import tsx bench/cluster.ts [--rebuild-images]
//
// node_up_cold_s: `up` with containerd's image store emptied (images imported again from their
//   archives) and a fresh etcd; the Kubernetes binaries, the Debian packages and the image archives
//   stay cached (building those from nothing is timed by the setup steps the scripts print).
// node_up_warm_s: `down` then `up` with every cache in place.
// image_build_s_<name>: a full `buildah bud --no-cache` of images/<name>/Dockerfile with
//   --rebuild-images; otherwise the archive cache answers and the figure is the cache lookup.
// pod_start_*: agent pods, creation to their backend container's start (init container included);
//   baseline_pod_start_s: a bare pod of the static pause image, same node, same run.
import { parseArgs } from 'node:util';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildImages,
  kubectl,
  kubectlJson,
  kubectlOk,
  nodeDown,
  nodeUp,
  REPO,
  shOk,
  waitFor,
} from '../tests/support/real-node.ts';
import { installChart, uninstallChart, type ExperimentStatus } from '../tests/support/real-node-llem.ts';

const { values } = parseArgs({ options: { 'rebuild-images': { type: 'boolean', default: false } } });
const NAMES = ['controller', 'agent', 'pytorch', 'nats'];
const NS = 'llem-bench';
const RELEASE_NS = 'llem-bench-system';

interface PodJson {
  metadata: { name: string; creationTimestamp: string };
  status?: {
    containerStatuses?: { state?: { running?: { startedAt: string }; terminated?: { startedAt: string } } }[];
  };
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN);
}

function startSeconds(p: PodJson): number | undefined {
  const s = p.status?.containerStatuses?.[0]?.state;
  const started = s?.running?.startedAt ?? s?.terminated?.startedAt;
  return started === undefined ? undefined : (Date.parse(started) - Date.parse(p.metadata.creationTimestamp)) / 1000;
}

async function main(): Promise<void> {
  const first = await nodeUp();
  const wasUp = first.alreadyUp;
  const out: Record<string, string> = {};
  // Warm: everything cached.
  await nodeDown();
  out['node_up_warm_s'] = (await nodeUp()).seconds.toFixed(1);
  // Cold(er): containerd's image store emptied too, so images come back from their archives.
  await nodeDown();
  rmSync(
    join(
      process.env['LLEM_CACHE'] ?? join(process.env['HOME'] ?? '/root', '.cache', 'llem'),
      'dev-cluster',
      'containerd',
    ),
    { recursive: true, force: true },
  );
  const t0 = performance.now();
  await nodeUp();
  const importStart = performance.now();
  const images = await buildImages(NAMES);
  out['node_up_cold_s'] = ((performance.now() - t0) / 1000).toFixed(1);
  out['image_import_s'] = ((performance.now() - importStart) / 1000).toFixed(1);
  for (const name of NAMES) {
    if (values['rebuild-images'] === true) {
      const r = await shOk('bash', ['scripts/build-images.sh', name], {
        env: { LLEM_IMAGE_FORCE: '1', LLEM_IMAGE_NO_CACHE: '1', LLEM_IMAGE_ARGS_PYTORCH: 'INSTALL_TORCH=0' },
        echo: true,
      });
      out[`image_build_s_${name}`] = r.stdout.trim().split(' ').at(-1) ?? 'NaN';
    } else {
      out[`image_build_s_${name}`] = String(images[name]?.buildSeconds ?? NaN);
    }
  }
  const scratch = mkdtempSync(join(tmpdir(), 'llem-bench-cluster-'));
  try {
    await installChart(images, RELEASE_NS, scratch);
    await kubectlOk(['create', 'namespace', NS]);
    // Baseline: a bare pause pod on the same node.
    await kubectlOk(['apply', '-f', '-'], {
      input: `apiVersion: v1\nkind: Pod\nmetadata: { name: baseline, namespace: ${NS} }\nspec: { containers: [{ name: p, image: localhost/llem-pause:1, imagePullPolicy: Never }] }\n`,
    });
    const base = await waitFor('baseline pod', 120, async () =>
      startSeconds(await kubectlJson<PodJson>(['-n', NS, 'get', 'pod', 'baseline'])),
    );
    out['baseline_pod_start_s'] = base.toFixed(2);
    const manifest = readFileSync(join(REPO, 'examples', 'dev-cluster.yaml'), 'utf8'); // 2 configurations x 3 cycles
    const seen = new Map<string, number>();
    const tApply = performance.now();
    await kubectlOk(['-n', NS, 'apply', '-f', '-'], { input: manifest });
    await waitFor('dev-cluster Succeeded', 900, async () => {
      const pods = await kubectlJson<{ items: PodJson[] }>([
        '-n',
        NS,
        'get',
        'pods',
        '-l',
        'llem.dev/experiment=dev-cluster',
      ]);
      for (const p of pods.items) {
        const s = startSeconds(p);
        if (s !== undefined) seen.set(p.metadata.name, s);
      }
      const ee = await kubectlJson<{ status?: ExperimentStatus }>(['-n', NS, 'get', 'ee', 'dev-cluster']);
      if (ee.status?.phase === 'Failed') throw new Error(JSON.stringify(ee.status.conditions));
      return ee.status?.phase === 'Succeeded' ? true : undefined;
    });
    out['apply_to_succeeded_s'] = ((performance.now() - tApply) / 1000).toFixed(1);
    const starts = [...seen.values()].sort((a, b) => a - b);
    out['pods'] = String(starts.length);
    out['pod_start_p50_s'] = quantile(starts, 0.5).toFixed(2);
    out['pod_start_p99_s'] = quantile(starts, 0.99).toFixed(2);
  } finally {
    await kubectl(['delete', 'namespace', NS, '--wait=true', '--timeout=120s']);
    await uninstallChart(RELEASE_NS);
    rmSync(scratch, { recursive: true, force: true });
    if (!wasUp) await nodeDown();
  }
  const note = 'simulated=1';
  process.stdout.write(
    `RESULT ${Object.entries(out)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')} ${note}\n`,
  );
}

await main();
