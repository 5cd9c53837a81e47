// Across regions: both registries behind a delaying proxy, the in-flight limit rises above its
// start and past 64 (the wait is distance, not load) and the run stays exact; a Lambda invocation's
// share of the fleet bound still caps it. Counts and states only, no times.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type Registry, syncRepository, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../shared/engine/base/concurrency.js';
import { BASE_LIMIT } from '../shared/engine/registry/limit.js';
import { createAwsRuntime } from '../shared/aws/runtime.js';
import { lambdaContext } from './aws/support/event-source.js';
import { startDelayProxy, type DelayProxy } from './support/delay-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { MediaType, pushBlob, pushManifest, readTags } from './support/seed.js';

/** Long enough that a loaded test machine's jitter (tens of ms) stays small beside it. */
const ROUND_TRIP_MS = 80;
/**
 * Where one listing answer delayed by a busy machine must not pass for queueing (the idle jump's
 * test): the tag list of 300 tags from a registry on a loaded CI machine took 300 ms longer than
 * its neighbour. A second away, a stall that long is rare.
 */
const FAR_ROUND_TRIP_MS = 1_000;
const TAGS = 300;
const repo = validateRepositoryName('far/app');

let registries: RegistryPair;
let proxies: DelayProxy[];

beforeAll(async () => {
  registries = await startRegistryPair();
  proxies = await Promise.all([startDelayProxy(registries.primary.url, ROUND_TRIP_MS), startDelayProxy(registries.secondary.url, ROUND_TRIP_MS)]);
  // One shared layer and config; each tag its own manifest (an annotation apart), pushed directly.
  const P = registries.primary.url;
  const layer = Buffer.from('a layer far away');
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const [layerDigest, configDigest] = [await pushBlob(P, repo, layer), await pushBlob(P, repo, config)];
  await mapLimit(
    Array.from({ length: TAGS }, (_, i) => `t${i}`),
    16,
    (tag) =>
      pushManifest(
        P,
        repo,
        tag,
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
          layers: [{ mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length }],
          annotations: { tag },
        }),
        MediaType.ociManifest,
      ),
  );
});
afterAll(async () => {
  await Promise.all((proxies ?? []).map((proxy) => proxy.stop()));
  await registries?.stop();
});

function farClients() {
  const p = new RegistryClient({ url: proxies[0]!.url });
  const s = new RegistryClient({ url: proxies[1]!.url });
  return { p, s, close: () => Promise.all([p.close(), s.close()]) };
}

describe('far registries (every request delayed)', () => {
  it('raises the in-flight limit past 64 while syncing and verifying, and the secondary ends equal to the primary', async () => {
    const initial = farClients();
    try {
      expect((await syncRepository(initial.p, initial.s, repo)).status).toBe('synced');
      expect(initial.p.stats.limitMax).toBeGreaterThan(BASE_LIMIT);
    } finally {
      await initial.close();
    }
    expect(await readTags(registries.secondary.url, repo)).toEqual(await readTags(registries.primary.url, repo));
    expect(Object.keys(await readTags(registries.secondary.url, repo))).toHaveLength(TAGS);

    const again = farClients();
    try {
      expect((await syncRepository(again.p, again.s, repo)).status).toBe('synced');
      const report = await verifyRepository(again.p, again.s, repo);
      expect(report.status).toBe('synced');
      expect(report.primaryTags).toBe(TAGS);
      for (const side of [again.p, again.s]) {
        // 80 ms away and never queueing: the first round takes it to 2 a millisecond x 80 ms.
        expect(side.stats.limitMax).toBeGreaterThan(64);
        expect(side.stats.limitMax).toBeLessThanOrEqual(DEFAULT_CONCURRENCY);
        expect(side.stats.writes).toBe(0);
      }
    } finally {
      await again.close();
    }
  });

  it('sends the HEADs at the jumped limit: only the probes and the tag list are answered at the base', async () => {
    // The idle jump reads the listing's two or three answers; one of them held up by a busy test
    // machine for a round trip would look like queueing.
    const far = await Promise.all([startDelayProxy(registries.primary.url, FAR_ROUND_TRIP_MS), startDelayProxy(registries.secondary.url, FAR_ROUND_TRIP_MS)]);
    const limits: { p: number[]; s: number[] } = { p: [], s: [] };
    const p = new RegistryClient({ url: far[0].url }, { onResponse: ({ limit }) => void limits.p.push(limit) });
    const s = new RegistryClient({ url: far[1].url }, { onResponse: ({ limit }) => void limits.s.push(limit) });
    try {
      expect((await syncRepository(p, s, repo)).status).toBe('synced');
    } finally {
      await Promise.all([p.close(), s.close(), ...far.map((proxy) => proxy.stop())]);
    }
    // The GitLab probe and the tag list went out together (and the referrers probe on the
    // primary); their answers drained the pipe and took the jump, so no HEAD waits at 16 first.
    for (const side of [limits.p, limits.s]) {
      expect(side.length).toBeGreaterThan(TAGS);
      expect(side.filter((limit) => limit === BASE_LIMIT).length).toBeLessThanOrEqual(3);
      expect(Math.max(...side)).toBeGreaterThan(64);
    }
  });

  it("stops at a Lambda invocation's share of the fleet bound (the stack's defaults: 1920 over 20 + 10), and stays exact", async () => {
    const runtime = createAwsRuntime(
      {
        GEO_SYNC_TABLE: 'state',
        AWS_REGION: 'us-east-1',
        GEO_SYNC_PRIMARY_URL: proxies[0]!.url,
        GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: proxies[1]!.url }]),
        GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1920',
        GEO_SYNC_INVOCATIONS_AT_ONCE: '20+10',
      },
      async () => ({}),
    );
    const clients: Registry[] = [];
    const report = await runtime.invoke(lambdaContext(), async (registries) => {
      clients.push(registries.primary(), registries.secondary('eu'));
      return verifyRepository(clients[0]!, clients[1]!, repo, { concurrency: runtime.concurrency });
    });
    expect(report).toMatchObject({ status: 'synced', primaryTags: TAGS });
    for (const side of clients) expect(side.stats.limitMax).toBe(64);
  });
});
