import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidInputError } from '../../../lib/errors.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../../../lib/bus/checkpoint-codec.ts';
import { connectionOptions } from '../../../lib/bus/nats-connect.ts';
import { parseNatsBusOptions } from '../../../lib/bus/nats-options.ts';

function issues(input: unknown): string[] {
  try {
    parseNatsBusOptions(input, 'values.yaml');
  } catch (err) {
    assert.ok(err instanceof InvalidInputError);
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected InvalidInputError');
}

void describe('NATS bus options', () => {
  void it('fills documented defaults for the layout and the consumer', () => {
    const o = parseNatsBusOptions({ servers: 'nats://nats:4222' });
    assert.equal(o.layout.streamName, 'LLEM');
    assert.equal(o.layout.storage, 'file');
    assert.equal(o.layout.duplicateWindowSeconds, 120);
    assert.equal(o.consumer.maxAckPending, 512);
    assert.equal(o.maxReconnectAttempts, -1);
  });

  void it('refuses two authentication methods at once, naming the field', () => {
    assert.deepEqual(issues({ servers: 'nats://n:4222', user: 'u', password: 'p', token: 't' }), [
      'user: choose one of user/password, token, nkeySeed, credsFile, creds',
    ]);
  });

  void it('refuses a server that is not a URL, an unknown key and half a client certificate', () => {
    const found = issues({ servers: 'nats:4222', colour: 'red', tls: { certFile: '/c.pem' } });
    assert.ok(found.some((i) => i.startsWith('servers: ')));
    assert.ok(found.some((i) => i.includes('colour')));
    assert.ok(found.some((i) => i.startsWith('tls.certFile: certFile and keyFile go together')));
  });

  void it('refuses publish retries longer than the de-duplication window', () => {
    assert.deepEqual(issues({ servers: 'nats://n:4222', publishRetryMs: 200_000 }), [
      'publishRetryMs: must be shorter than layout.duplicateWindowSeconds, or a late retry could be stored twice',
    ]);
  });

  void it('refuses a seed that is not an NKey user seed', () => {
    assert.deepEqual(issues({ servers: 'nats://n:4222', nkeySeed: 'SOABC' }), [
      'nkeySeed: must be an NKey user seed (SU...)',
    ]);
  });

  void it('passes user, inbox prefix and reconnect policy to the client', () => {
    const c = connectionOptions(
      parseNatsBusOptions({
        servers: ['nats://a:4222', 'nats://b:4222'],
        user: 'agent',
        password: 'pw',
        inboxPrefix: '_INBOX_llem_agent_team-a',
      }),
    );
    assert.deepEqual(c.servers, ['nats://a:4222', 'nats://b:4222']);
    assert.equal(c.user, 'agent');
    assert.equal(c.pass, 'pw');
    assert.equal(c.inboxPrefix, '_INBOX_llem_agent_team-a');
    assert.equal(c.maxReconnectAttempts, -1);
  });
});

void describe('checkpoint encoding', () => {
  void it('round-trips state and the last stream sequence', () => {
    const record = { state: new Uint8Array([1, 2, 3]), lastStreamSeq: 2 ** 40 + 7 };
    assert.deepEqual(decodeCheckpoint(encodeCheckpoint(record), 'k'), record);
  });

  void it('refuses bytes in an unknown format', () => {
    assert.throws(() => decodeCheckpoint(new Uint8Array([9, 0, 0]), 'team-a.uid'), { name: 'CheckpointError' });
  });
});
