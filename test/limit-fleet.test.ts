// The fleet bound on AWS: each invocation's ceiling per registry is its share of
// registryMaxInFlight (GEO_SYNC_REGISTRY_MAX_IN_FLIGHT over GEO_SYNC_INVOCATIONS_AT_ONCE, the sum
// of the sync and verify functions' maximum concurrencies), never
// more than GEO_SYNC_CONCURRENCY; settings that do not make sense are refused. The share's effect
// on a far registry is shown in latency.test.ts.
import { describe, expect, it } from 'vitest';
import { createAwsRuntime } from '../shared/aws/runtime.js';
import { DEFAULT_CONCURRENCY, GeoSyncError } from '../shared/engine/index.js';

const base = {
  GEO_SYNC_TABLE: 'state',
  GEO_SYNC_PRIMARY_URL: 'http://127.0.0.1:1',
  GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: 'http://127.0.0.1:2' }]),
  AWS_REGION: 'us-east-1',
};
const ceiling = (env: Record<string, string>) => createAwsRuntime({ ...base, ...env }, async () => ({})).concurrency;
const refusal = (env: Record<string, string>) => {
  try {
    ceiling(env);
  } catch (error) {
    return error instanceof GeoSyncError ? `${error.code}: ${error.message}` : String(error);
  }
  return 'accepted';
};

describe('each invocation takes its share of the fleet bound', () => {
  it.each([
    [{}, DEFAULT_CONCURRENCY],
    [{ GEO_SYNC_CONCURRENCY: '100' }, 100],
    // The stack's defaults: 1920 over 20 sync and 10 verify invocations at once.
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1920', GEO_SYNC_INVOCATIONS_AT_ONCE: '20+10' }, 64],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280', GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, 64],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '7680', GEO_SYNC_INVOCATIONS_AT_ONCE: ' 20 + 10 ' }, 256],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '5120', GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, 256],
    // A share that does not divide evenly rounds down: 20 x 6 = 120 <= 130.
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '130', GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, 6],
    // The operator's cap wins over a larger share.
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '5120', GEO_SYNC_INVOCATIONS_AT_ONCE: '20', GEO_SYNC_CONCURRENCY: '32' }, 32],
  ])('%j: at most %i in flight per registry', (env, expected) => {
    expect(ceiling(env)).toBe(expected);
  });

  it.each([
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '10', GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, /leaves no request for each of 20 invocations/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280' }, /go together; only one is set/],
    [{ GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, /go together; only one is set/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: 'many', GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, /GEO_SYNC_REGISTRY_MAX_IN_FLIGHT/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280', GEO_SYNC_INVOCATIONS_AT_ONCE: '0' }, /GEO_SYNC_INVOCATIONS_AT_ONCE/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280', GEO_SYNC_INVOCATIONS_AT_ONCE: '0+0' }, /GEO_SYNC_INVOCATIONS_AT_ONCE/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280', GEO_SYNC_INVOCATIONS_AT_ONCE: '20+' }, /GEO_SYNC_INVOCATIONS_AT_ONCE: expected whole numbers joined by "\+"/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280', GEO_SYNC_INVOCATIONS_AT_ONCE: '20-10' }, /GEO_SYNC_INVOCATIONS_AT_ONCE/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '20', GEO_SYNC_INVOCATIONS_AT_ONCE: '20+10' }, /leaves no request for each of 30 invocations/],
    [{ GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1280.5', GEO_SYNC_INVOCATIONS_AT_ONCE: '20' }, /GEO_SYNC_REGISTRY_MAX_IN_FLIGHT/],
  ])('%j is refused as invalid configuration', (env, message) => {
    const answer = refusal(env);
    expect(answer).toMatch(/^INVALID_CONFIG: /);
    expect(answer).toMatch(message);
  });
});
