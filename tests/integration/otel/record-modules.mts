// Preloaded into `llem` by the OpenTelemetry test (--import): appends every resolved
// @opentelemetry/* module URL to $LLEM_TEST_MODULE_LOG, to prove the SDK is (not) loaded.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const log = process.env['LLEM_TEST_MODULE_LOG'];
if (log !== undefined) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (resolved.url.includes('/@opentelemetry/')) appendFileSync(log, `${resolved.url}\n`);
      return resolved;
    },
  });
}
