// The results artifact an uninterrupted controller would have written, rebuilt from what the experiment
// recorded: every message of the experiment in the chart's JetStream stream, in stream order, applied
// once to a fresh Aggregator (the one the controller uses), and the artifact's derived parts (per-run
// J/token, per-configuration results, best) recomputed from it with the controller's own functions. Two
// separate runs of an experiment on a real node never see the same timings, so this is the baseline a
// restarted controller's artifact must equal byte for byte: a message counted twice or lost, a
// checkpoint that resumed at the wrong place, shows as a difference.
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { decodeMessages, experimentSubjectFilter } from '../../api/protocol.ts';
import { validateEnergyExperiment } from '../../api/validation.ts';
import type { RunSummary } from '../../api/status.ts';
import { newAggregator, type Aggregator } from '../../aggregator/index.ts';
import { statusMetrics, withAggregatorRunMetrics } from '../../controller/aggregate-view.ts';
import { bestConfiguration, configurationResults } from '../../controller/status.ts';
import { NatsLayoutSchema } from '../../lib/bus/nats-options.ts';
import { subjectMismatch } from '../../lib/bus/subjects.ts';
import { kubectlJson } from './real-node.ts';
import { natsAuth } from './real-node-llem.ts';

interface ArtifactDoc {
  experiment: { uid: string };
  runs: RunSummary[];
  results: unknown;
  [key: string]: unknown;
}

/** Every data message of one experiment in the stream, in stream order: [stream sequence, subject, bytes]. */
async function recordedMessages(
  releaseNs: string,
  expNs: string,
  uid: string,
): Promise<{ seq: number; subject: string; data: Uint8Array }[]> {
  const svc = await kubectlJson<{ spec: { clusterIP: string } }>(['-n', releaseNs, 'get', 'svc', 'llem-nats']);
  const nc = await connect({ servers: `nats://${svc.spec.clusterIP}:4222`, ...(await natsAuth(releaseNs)) });
  try {
    const js = jetstream(nc);
    const stream = NatsLayoutSchema.parse({}).streamName;
    // An ordered consumer: ephemeral, reads without acknowledging, so the controller's durable is untouched.
    // One filter as a string (filter_subject): the chart's nats-server (Debian's 2.9) has no filter_subjects.
    const consumer = await js.consumers.get(stream, { filter_subjects: experimentSubjectFilter(expNs, uid) });
    const out: { seq: number; subject: string; data: Uint8Array }[] = [];
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 3000 });
      let pending = -1;
      for await (const m of batch) {
        out.push({ seq: m.seq, subject: m.subject, data: m.data });
        pending = m.info.pending;
      }
      if (pending <= 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

/**
 * The artifact text a fresh aggregation of the recorded stream gives, for the experiment whose
 * artifact is `artifactText`: the same document with every Aggregator-derived part recomputed.
 */
export async function replayedArtifact(
  releaseNs: string,
  expNs: string,
  name: string,
  artifactText: string,
  /** dropOne: leave out the middle message (a negative control: the result must then differ). */
  opts: { dropOne?: boolean } = {},
): Promise<{ text: string; messages: number; applied: number; after: number }> {
  const doc = JSON.parse(artifactText) as ArtifactDoc;
  // The resource as the controller validates it (reconciler.ts validateObject): no server metadata.
  const obj = await kubectlJson<{
    apiVersion: string;
    kind: string;
    metadata: { name: string; labels?: Record<string, string> };
    spec: unknown;
  }>(['-n', expNs, 'get', 'ee', name]);
  const v = validateEnergyExperiment({
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: {
      name: obj.metadata.name,
      namespace: expNs,
      ...(obj.metadata.labels !== undefined ? { labels: obj.metadata.labels } : {}),
    },
    spec: obj.spec,
  });
  if (!v.ok) throw new Error(`${name}: the experiment no longer validates: ${JSON.stringify(v.issues)}`);
  const spec = v.experiment.spec;
  const agg: Aggregator = newAggregator(
    doc.experiment.uid,
    v.matrix,
    spec.placement.replicas,
    spec.policy.failurePolicy,
  );
  // As a restarted controller does: every attempt the run table recorded is declared before reading.
  for (const r of doc.runs) for (let a = 1; a <= r.attempt; a++) agg.startAttempt(r.id, a);
  const messages = await recordedMessages(releaseNs, expNs, doc.experiment.uid);
  // Up to the last stream position the artifact says it had read: a message published after the
  // artifact was written (a pod's late marker) is not part of it. One the controller skipped before
  // that position, or applied twice, is.
  const upTo = (doc.results as { lastStreamSeq?: number } | null)?.lastStreamSeq ?? 0;
  let applied = 0;
  const inArtifact = messages.filter((m) => m.seq <= upTo);
  const dropped = opts.dropOne === true ? inArtifact[Math.floor(inArtifact.length / 2)] : undefined;
  for (const m of messages) {
    if (m.seq > upTo || m === dropped) continue;
    // As the controller reads the stream (controller/results.ts): a bus message is one wire message or a
    // batch of them (ADR 0021, sent when publishes queue behind unacked ones, e.g. while NATS restarts); it
    // dead-letters what it cannot decode or a bus message with any member on another run's subject.
    const decoded = decodeMessages(m.data);
    if (!decoded.ok || decoded.messages.some((d) => subjectMismatch(m.subject, d, decoded.batch) !== null)) continue;
    for (const r of agg.applyBatch(decoded.messages, m.seq)) if (r.outcome === 'applied') applied += 1;
  }
  const results = agg.results();
  const configurations = configurationResults(v.matrix.configurations, doc.runs, statusMetrics(results));
  const rebuilt = {
    ...doc,
    runs: withAggregatorRunMetrics(doc.runs, results),
    configurations,
    best: bestConfiguration(configurations),
    results,
  };
  const after = messages.filter((m) => m.seq > upTo).length;
  return { text: JSON.stringify(rebuilt, null, 2), messages: messages.length, applied, after };
}
