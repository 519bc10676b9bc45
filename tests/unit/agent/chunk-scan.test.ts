import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SCAN_FALLBACK, scanChunk } from '../../../agent/load/chunk-scan.ts';
import { chunkFacts, StreamingClient, type ApiKind } from '../../../agent/load/client.ts';
import { SseParser } from '../../../agent/load/sse.ts';

/** What the client reads from a payload through JSON.parse: the facts, or 'throws'. */
function reference(payload: string, api: ApiKind): number | 'throws' {
  try {
    return chunkFacts(api, JSON.parse(payload) as Parameters<typeof chunkFacts>[1]);
  } catch {
    return 'throws';
  }
}

const plain = [
  '{"id":"c1","object":"text_completion","choices":[{"index":0,"text":"Hello","finish_reason":null}]}',
  '{"choices":[{"index":0,"text":"","finish_reason":"length"}]}',
  '{"choices":[{"index":0,"text":" wörld ✓","logprobs":null,"finish_reason":null}],"usage":null}',
  '{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}',
  '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
  '{"choices":[]}',
  ' { "choices" : [ { "text" : "a\\"b\\\\c\\u00e9\\n" , "finish_reason" : null } ] } ',
  '{"choices":[{"text":"a","finish_reason":null},{"text":"","finish_reason":"stop"}]}',
  '{"choices":[{"text":"a","finish_reason":null}],"choices":[{"text":"","finish_reason":"x"}]}',
  '{"choices":[{"text":"a","text":"","finish_reason":""}]}',
  '{"choices":[{"text":null,"finish_reason":0,"nested":{"text":"x","choices":[1,2,{"a":[true,false,null]}]}}]}',
  '{"x":-0.5e+10,"y":[1e5,0,-12.25E-3],"choices":[{"delta":{"content":"z"}}]}',
];
const unusual = [
  '{"error":{"message":"boom"}}',
  '{"error":null,"choices":[]}',
  '{"choices":[{"text":"a"}],"usage":{"prompt_tokens":3,"completion_tokens":7}}',
  '{"choices":[{"te\\u0078t":"a"}]}',
  '{"choices":[{"text":5}]}',
  '{"choices":[null]}',
  '{"choices":["abc"]}',
  '{"choices":{"0":{"text":"a"}}}',
  '{"choices":[{"delta":null}]}',
  '{"choices":[{"delta":"abc"}]}',
  `{"a":${'['.repeat(100)}${']'.repeat(100)},"choices":[]}`,
];
const invalid = [
  '{"choices":[{"text":"a",}]}',
  '{"choices":[{"text":"a"}]',
  '{"choices":[{"text":"a"}]}}',
  '{"choices":[{"text":"a\u0001"}]}',
  '{"choices":[{"text":"\\x"}]}',
  '{"choices":[{"text":"\\u12"}]}',
  '{"n":01}',
  '{"n":1.}',
  '{"n":-}',
  '{"n":tru}',
  '{"n":NaN}',
  "{'choices':[]}",
  '[]',
  '',
  '{"choices":[{"text":"a"}]} x',
];

void test('the byte scanner agrees with JSON.parse on every chunk it answers, for both APIs', () => {
  for (const api of ['completions', 'chat'] as const) {
    for (const payload of [...plain, ...unusual, ...invalid]) {
      const got = scanChunk(Buffer.from(payload), 0, Buffer.byteLength(payload), api === 'chat');
      const want = reference(payload, api);
      if (got !== SCAN_FALLBACK) assert.equal(got, want, `${api}: ${payload}`);
      else if (plain.includes(payload)) assert.fail(`${api}: a plain chunk went to JSON.parse: ${payload}`);
      // Invalid JSON must never be answered by the scanner: JSON.parse then throws, as before.
      if (want === 'throws') assert.equal(got, SCAN_FALLBACK, `${api}: invalid JSON answered: ${payload}`);
    }
    // (A completions chunk's delta and a chat chunk's text are not read: odd values there are nothing unusual.)
    const notRead = api === 'chat' ? '"text":5' : '"delta"';
    for (const payload of unusual.filter((u) => !u.includes(notRead))) {
      const got = scanChunk(Buffer.from(payload), 0, Buffer.byteLength(payload), api === 'chat');
      assert.equal(got, SCAN_FALLBACK, `${api}: errors, usage and odd shapes go to JSON.parse: ${payload}`);
    }
  }
});

void test('the byte scanner reads only its range of a buffer that holds more bytes around it', () => {
  const payload = '{"choices":[{"text":"a","finish_reason":null}]}';
  const buf = Buffer.from(`data: ${payload}\n\ndata: {"x":1}`);
  const from = 6;
  assert.equal(scanChunk(buf, from, from + payload.length, false), 1);
  // Cut short inside the range, the same bytes are invalid even though the buffer goes on.
  assert.equal(scanChunk(buf, from, from + payload.length - 1, false), SCAN_FALLBACK);
  assert.equal(scanChunk(buf, from, from + 12, false), SCAN_FALLBACK);
});

const EVENTS = [
  ': keep-alive\n\n',
  'data: {"choices":[{"text":"Grüße ✓ 🙂","finish_reason":null}]}\n\n',
  'event: ping\r\nid: 7\r\n\r\n',
  'data:{"choices":[{"text":"x"}]}\r\n\r\n',
  'data: first line\ndata: second line\n\n',
  'data: [DONE]\n\n',
];
const EXPECTED = [
  '{"choices":[{"text":"Grüße ✓ 🙂","finish_reason":null}]}',
  '{"choices":[{"text":"x"}]}',
  'first line\nsecond line',
  '[DONE]',
];

void test('SSE bytes split at every position (inside data:, a blank line, a UTF-8 character) give the same events', () => {
  const whole = Buffer.from(EVENTS.join(''));
  for (let cut = 0; cut <= whole.length; cut++) {
    for (let cut2 = cut; cut2 <= whole.length; cut2 += 7) {
      const parser = new SseParser();
      const got: string[] = [];
      // One reused read buffer, overwritten after every push, as a socket's read buffer is.
      const readBuffer = Buffer.alloc(whole.length);
      for (const [a, z] of [
        [0, cut],
        [cut, cut2],
        [cut2, whole.length],
      ] as const) {
        whole.copy(readBuffer, 0, a, z);
        parser.pushBytes(readBuffer.subarray(0, z - a), (b, from, to) => got.push(b.toString('utf8', from, to)));
        readBuffer.fill(0x41);
      }
      assert.deepEqual(got, EXPECTED, `cuts at ${cut} and ${cut2}`);
    }
  }
});

/** A server writing `body` one byte per HTTP chunk, a millisecond apart: every read boundary is tried. */
async function byteServer(body: string): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer((_q, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const bytes = Buffer.from(body);
    let i = 0;
    const next = (): void => {
      if (i >= bytes.length) return void res.end();
      res.write(bytes.subarray(i, ++i));
      setTimeout(next, 1);
    };
    next();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => s.close(() => r())),
  };
}

const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;

void test('a stream read a byte at a time counts tokens, finish, usage and comments as whole reads do', async () => {
  const body =
    ': keep-alive\n\n' +
    ev({ choices: [{ text: 'Grü', finish_reason: null }], llem_server: { received_ms: 1, first_token_ms: 3 } }) +
    ev({ choices: [{ text: 'ße 🙂', finish_reason: null }] }) +
    ': ping\n\n' +
    ev({ choices: [{ text: '', finish_reason: null }] }) +
    ev({ choices: [{ text: '!', finish_reason: 'length' }] }) +
    ev({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 3 } }) +
    'data: [DONE]\n\n';
  const s = await byteServer(body);
  const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 10_000 });
  const req = { api: 'completions' as const, model: 'm', prompt: 'p', promptTokens: 2, maxTokens: 3 };
  const r = await client.send({ ...req, ignoreEos: false, temperature: 0 });
  client.close();
  await s.close();
  assert.equal(r.ok, true, r.error);
  assert.equal(r.outputTokens, 3);
  assert.equal(r.inputTokens, 9);
  assert.equal(r.itlMs.length, 2, 'three text chunks: two gaps (the empty one is not a token)');
  assert.equal(r.serverTtftMs, 2);
});

void test('an error event or invalid JSON after the first token still fails the request', async () => {
  const first = ev({ choices: [{ text: 'a', finish_reason: null }] });
  const cases: Array<[string, string]> = [
    [first + ev({ error: { message: 'engine died' } }) + 'data: [DONE]\n\n', 'server_error'],
    [first + 'data: {"choices":[{"text":"b",}]}\n\n' + 'data: [DONE]\n\n', 'bad_response'],
  ];
  for (const [body, errorClass] of cases) {
    const s = await byteServer(body);
    const client = new StreamingClient({ baseUrl: s.url, timeoutMs: 10_000 });
    const req = { api: 'completions' as const, model: 'm', prompt: 'p', promptTokens: 2, maxTokens: 3 };
    const r = await client.send({ ...req, ignoreEos: false, temperature: 0 });
    client.close();
    await s.close();
    assert.equal(r.errorClass, errorClass, r.error);
  }
});

void test('chunks mutated at random bytes are either answered as JSON.parse reads them or left to it', () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const alphabet = Buffer.from('{}[]":,\\ u0123456789eE.+-truefalsnl\x01\xc3\xa9abc');
  for (let k = 0; k < 20_000; k++) {
    const base = Buffer.from(plain[rand(plain.length)] as string);
    const at = rand(base.length);
    const byte = alphabet[rand(alphabet.length)] as number;
    const op = rand(3);
    const mutated =
      op === 0
        ? Buffer.concat([base.subarray(0, at), base.subarray(at + 1)])
        : op === 1
          ? Buffer.concat([base.subarray(0, at), Buffer.from([byte]), base.subarray(at)])
          : Buffer.concat([base.subarray(0, at), Buffer.from([byte]), base.subarray(at + 1)]);
    for (const api of ['completions', 'chat'] as const) {
      const got = scanChunk(mutated, 0, mutated.length, api === 'chat');
      if (got === SCAN_FALLBACK) continue;
      assert.equal(got, reference(mutated.toString('utf8'), api), `${api}: ${mutated.toString('utf8')}`);
    }
  }
});
