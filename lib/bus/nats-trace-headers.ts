// W3C trace context on NATS messages: the agent's publisher passes `traceparent`/`tracestate`, the
// aggregator reads them back to link its spans to the agent's. Only these headers are carried, so
// a publisher cannot smuggle other headers (Nats-Msg-Id and friends are set by the bus itself).
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import type { JsMsg } from '@nats-io/jetstream';

const TRACE_HEADERS = ['traceparent', 'tracestate'] as const;

/** NATS headers for the trace context in `h`; undefined when there is none (no header bytes sent). */
export function traceHeaders(h: Record<string, string> | undefined): MsgHdrs | undefined {
  if (h?.['traceparent'] === undefined) return undefined;
  const out = headers();
  for (const k of TRACE_HEADERS) if (h[k] !== undefined) out.set(k, h[k]);
  return out;
}

/** `{ headers }` with the message's trace context, or {} when it carries none. */
export function traceHeadersOf(m: Pick<JsMsg, 'headers'>): { headers?: Record<string, string> } {
  const tp = m.headers?.get('traceparent');
  if (tp === undefined || tp === '') return {};
  const ts = m.headers?.get('tracestate');
  return { headers: { traceparent: tp, ...(ts === undefined || ts === '' ? {} : { tracestate: ts }) } };
}
