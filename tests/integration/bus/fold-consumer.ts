// Child process for the "consumer killed mid-stream" test: consumes with a checkpoint every N
// applied messages and prints `applied <n>` so the parent knows when to SIGKILL it.
import { experimentSubjectFilter } from '../../../api/protocol.ts';
import { openNatsBus } from '../../../lib/bus/nats.ts';
import { DeterministicFold } from './fold.ts';

const [url, ns, uid, durable, key, everyArg] = process.argv.slice(2);
if (url === undefined || ns === undefined || uid === undefined || durable === undefined || key === undefined) {
  throw new Error('usage: fold-consumer.ts <url> <ns> <uid> <durable> <checkpointKey> <every>');
}
const every = Number(everyArg ?? '500');
const bus = await openNatsBus({ servers: url });
const checkpoint = await bus.getCheckpoint(key);
const fold = checkpoint === null ? new DeterministicFold() : DeterministicFold.restore(checkpoint.state);
let sinceCheckpoint = 0;
await bus.consume({
  durable,
  filterSubject: experimentSubjectFilter(ns, uid),
  afterStreamSeq: checkpoint?.lastStreamSeq ?? 0,
  handler: async (m) => {
    const d = await fold.handle(m);
    if (++sinceCheckpoint >= every) {
      await bus.putCheckpoint(key, { state: fold.serialize(), lastStreamSeq: m.streamSeq });
      sinceCheckpoint = 0;
    }
    process.stdout.write(`applied ${fold.state.applied}\n`);
    return d;
  },
});
