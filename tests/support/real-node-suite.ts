// One real-node test file's life: a clean node of its own (leftovers of a crashed or killed run brought
// down first), the images, the chart; at the end everything removed and the host as it was before.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostDiff, hostState, type HostState } from './real-node-host.ts';
import {
  buildImages,
  cleanStaleNode,
  kubectl,
  kubectlJson,
  kubectlOk,
  nodeDown,
  nodeUp,
  ownsNode,
  REPO,
  RUN_DIR,
  waitFor,
  type BuiltImage,
} from './real-node.ts';
import { fetchResults, installChart, uninstallChart, type ExperimentStatus } from './real-node-llem.ts';

export const RELEASE_NS = 'llem-system';
export const EXP_NS = 'llem-e2e';

export class RealNodeSuite {
  images: Record<string, BuiltImage> = {};
  /** The host before `up`; undefined when a node a user started was already running (it stays up). */
  private before: HostState | undefined;
  private owned = false;
  private down = false;
  readonly scratch = mkdtempSync(join(tmpdir(), 'llem-node-e2e-'));

  /** `chartArgs`: extra `helm install` arguments (an admin's choices, e.g. an allowed toleration key). */
  async setUp(chartArgs: string[] = []): Promise<void> {
    await cleanStaleNode();
    const state = await hostState(RUN_DIR);
    let up: Awaited<ReturnType<typeof nodeUp>>;
    try {
      up = await nodeUp();
    } catch (err) {
      // A node this process got half way up goes down now, not when the watchdog sees it end (a node
      // another test run holds is left alone).
      if (ownsNode()) await nodeDown();
      throw err;
    }
    this.owned = !up.alreadyUp;
    if (this.owned) this.before = state;
    process.stderr.write(
      `real node: up in ${up.seconds.toFixed(1)} s${up.alreadyUp ? ' (a user node, left up)' : ''}\n`,
    );
    this.images = await buildImages(['controller', 'agent', 'pytorch', 'nats']);
    await installChart(this.images, RELEASE_NS, this.scratch, chartArgs);
    await kubectlOk(['create', 'namespace', EXP_NS]);
  }

  /**
   * Removes what the tests made and brings the node down (when this file started it); returns what
   * differs on the host from before `up`, or undefined when a user's node was left up.
   */
  async tearDown(): Promise<string[] | undefined> {
    if (this.down) return [];
    if (!this.owned || this.before === undefined) {
      // A user's node stays up: what the tests made goes. A node of our own goes down whole instead.
      await kubectl(['delete', 'namespace', EXP_NS, '--wait=true', '--timeout=120s']);
      await uninstallChart(RELEASE_NS);
      rmSync(this.scratch, { recursive: true, force: true });
      this.down = true;
      return undefined;
    }
    const down = await nodeDown();
    assert.equal(down.code, 0, down.stderr);
    rmSync(this.scratch, { recursive: true, force: true });
    this.down = true;
    return hostDiff(this.before, await hostState(RUN_DIR));
  }
}

/** examples/dev-cluster.yaml under another name, edited by `edit`. */
export function variant(name: string, edit?: (yaml: string) => string): string {
  const base = readFileSync(join(REPO, 'examples', 'dev-cluster.yaml'), 'utf8').replace(
    'name: dev-cluster',
    `name: ${name}`,
  );
  if (edit === undefined) return base;
  const out = edit(base);
  assert.notEqual(out, base, 'the edit applied');
  return out;
}

export async function eeStatus(name: string): Promise<ExperimentStatus & { runs?: RunRow[] }> {
  const ee = await kubectlJson<{ status?: ExperimentStatus & { runs?: RunRow[] } }>(['-n', EXP_NS, 'get', 'ee', name]);
  return ee.status ?? {};
}

export interface RunRow {
  id: string;
  phase: string;
  attempt: number;
  message?: string;
}

export async function waitPhase(name: string, phases: string[], seconds: number): Promise<ExperimentStatus> {
  try {
    return await waitFor(`${name} ${phases.join('|')}`, seconds, async () => {
      const s = await eeStatus(name);
      return phases.includes(s.phase ?? '') ? s : undefined;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await diagnosis(name)}`, { cause: err });
  }
}

/** What an experiment that did not get where it should is doing: its runs, its pods' containers, Events. */
export async function diagnosis(name: string): Promise<string> {
  const s = await eeStatus(name).catch(() => ({}) as Awaited<ReturnType<typeof eeStatus>>);
  const pods = await kubectlJson<{
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      spec: { nodeName?: string };
      status: { phase?: string; reason?: string; initContainerStatuses?: unknown[]; containerStatuses?: unknown[] };
    }[];
  }>(['-n', EXP_NS, 'get', 'pods', '-l', `llem.dev/experiment=${name}`]).catch(() => ({ items: [] }));
  const events = await experimentEvents(name).catch((e: unknown) => String(e));
  return [
    `phase ${s.phase ?? '?'}; conditions ${JSON.stringify(s.conditions ?? [])}`,
    `runs ${JSON.stringify(s.runs ?? [])}`,
    ...pods.items.map(
      (p) =>
        `pod ${p.metadata.name} on ${p.spec.nodeName ?? '(unscheduled)'}` +
        `${p.metadata.deletionTimestamp !== undefined ? ` deleted at ${p.metadata.deletionTimestamp}` : ''}: ` +
        JSON.stringify(p.status),
    ),
    `events:\n${events}`,
  ]
    .join('\n')
    .slice(0, 12_000);
}

/** How many runs of each configuration the results artifact includes. */
export async function runsPerConfiguration(status: ExperimentStatus): Promise<number[]> {
  const doc = JSON.parse(await fetchResults(RELEASE_NS, status)) as {
    results: { configurations: { runsIncluded: unknown[] }[] };
  };
  return doc.results.configurations.map((c) => c.runsIncluded.length);
}

/** The Events recorded on an experiment, as kubectl prints them. */
export async function experimentEvents(name: string): Promise<string> {
  return kubectlOk([
    '-n',
    EXP_NS,
    'get',
    'events',
    '--field-selector',
    `involvedObject.kind=EnergyExperiment,involvedObject.name=${name}`,
  ]);
}
