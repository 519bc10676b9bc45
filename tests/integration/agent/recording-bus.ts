// Test doubles shared by the agent tests: a bus that records what was published.
import { decodeMessages, type WireMessage } from '../../../api/protocol.ts';
import { InProcessBus } from '../../../lib/bus/inprocess.ts';

export interface RecordingBus {
  bus: InProcessBus;
  messages: WireMessage[];
}

/** The real in-process bus, with every published message decoded (and validated) on the side. */
export function recordingBus(): RecordingBus {
  const bus = new InProcessBus();
  const messages: WireMessage[] = [];
  const publish = bus.publish.bind(bus);
  bus.publish = async (subject, data, opts) => {
    // One wire message, or a batch of them (ADR 0021).
    const decoded = decodeMessages(data);
    if (!decoded.ok) throw new Error(`published an invalid message: ${decoded.error}`);
    messages.push(...decoded.messages);
    return publish(subject, data, opts);
  };
  return { bus, messages };
}

export function kinds(messages: readonly WireMessage[]): string[] {
  return messages.map((m) => (m.kind === 'telemetry' && m.mark !== undefined ? `mark:${m.mark}` : m.kind));
}
