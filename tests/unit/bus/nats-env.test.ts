import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InvalidInputError } from '../../../lib/errors.ts';
import { natsOptionsFromEnv } from '../../../lib/bus/nats-env.ts';

/** Credential and TLS files must exist: real (empty) ones in a temp dir. */
const D = mkdtempSync(join(tmpdir(), 'llem-nats-env-'));
for (const f of ['ca.pem', 'creds', 'c.pem', 'k.pem', 'c']) writeFileSync(join(D, f), '');
const F = (name: string): string => join(D, name);

/** The variables named by the issues of the InvalidInputError the env raises. */
function rejected(env: Record<string, string>): string[] {
  try {
    natsOptionsFromEnv(env);
  } catch (err) {
    assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${String(err)}`);
    return err.issues.map((i) => i.file);
  }
  assert.fail('expected InvalidInputError');
}

const URL = { LLEM_NATS_URL: 'nats://nats:4222' };

void describe('NATS settings from the environment', () => {
  void it('is null when LLEM_NATS_URL is unset or empty', () => {
    assert.equal(natsOptionsFromEnv({}), null);
    assert.equal(natsOptionsFromEnv({ LLEM_NATS_URL: ' ', LLEM_NATS_USER: 'u' }), null);
  });

  void it('splits the URL list and keeps only the variables that are set', () => {
    const o = natsOptionsFromEnv({
      LLEM_NATS_URL: 'nats://a:4222, tls://b:4222',
      LLEM_NATS_USER: 'controller',
      LLEM_NATS_PASSWORD: 'pw',
      LLEM_NATS_TOKEN: '',
      LLEM_NATS_CA_FILE: F('ca.pem'),
    });
    assert.deepEqual(o, {
      servers: ['nats://a:4222', 'tls://b:4222'],
      user: 'controller',
      password: 'pw',
      tls: { caFile: F('ca.pem') },
    });
  });

  void it('reads a credentials file, a token and mutual TLS files', () => {
    assert.deepEqual(natsOptionsFromEnv({ ...URL, LLEM_NATS_CREDS_FILE: F('creds') }), {
      servers: ['nats://nats:4222'],
      credsFile: F('creds'),
    });
    assert.deepEqual(natsOptionsFromEnv({ ...URL, LLEM_NATS_TOKEN: 't' }), {
      servers: ['nats://nats:4222'],
      token: 't',
    });
    const tls = natsOptionsFromEnv({ ...URL, LLEM_NATS_CERT_FILE: F('c.pem'), LLEM_NATS_KEY_FILE: F('k.pem') });
    assert.deepEqual(tls?.tls, { certFile: F('c.pem'), keyFile: F('k.pem') });
  });

  void it('rejects two auth methods at once, naming the second variable', () => {
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_USER: 'u', LLEM_NATS_PASSWORD: 'p', LLEM_NATS_TOKEN: 't' }), [
      'LLEM_NATS_USER',
    ]);
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_CREDS_FILE: F('c'), LLEM_NATS_TOKEN: 't' }), ['LLEM_NATS_TOKEN']);
  });

  void it('rejects a password without a user', () => {
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_PASSWORD: 'p' }), ['LLEM_NATS_PASSWORD']);
  });

  void it('rejects a client certificate without its key, and the reverse', () => {
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_CERT_FILE: F('c.pem') }), ['LLEM_NATS_KEY_FILE']);
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_KEY_FILE: F('k.pem') }), ['LLEM_NATS_CERT_FILE']);
  });

  void it('rejects a URL that is not nats://, tls://, ws:// or wss://', () => {
    assert.deepEqual(rejected({ LLEM_NATS_URL: 'nats://a:4222,http://b:4222' }), ['LLEM_NATS_URL']);
    assert.deepEqual(rejected({ LLEM_NATS_URL: ',' }), ['LLEM_NATS_URL']);
  });

  void it('puts the variable name in the message the CLI prints', () => {
    assert.throws(
      () => natsOptionsFromEnv({ ...URL, LLEM_NATS_PASSWORD: 'p' }),
      (err: unknown) => {
        assert.ok(err instanceof InvalidInputError);
        assert.match(err.message, /^LLEM_NATS_PASSWORD: is set without LLEM_NATS_USER/);
        return true;
      },
    );
  });
});

void describe('NATS credential files', () => {
  it('a named file that cannot be read is rejected by its variable, before any connection', () => {
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_CREDS_FILE: F('missing.creds') }), ['LLEM_NATS_CREDS_FILE']);
    assert.deepEqual(rejected({ ...URL, LLEM_NATS_CA_FILE: F('missing-ca.pem') }), ['LLEM_NATS_CA_FILE']);
  });
});
