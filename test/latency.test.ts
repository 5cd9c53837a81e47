// Across regions: both registries behind a delaying proxy, the in-flight limit rises above its
// start (the wait is distance, not load) and the run stays exact. Counts and states only, no times.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { mapLimit } from '../shared/engine/concurrency.js';
import { BASE_LIMIT } from '../shared/engine/registry/limit.js';
import { startDelayProxy, type DelayProxy } from './support/delay-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { MediaType, pushBlob, pushManifest, readTags } from './support/seed.js';

/** Long enough that a loaded test machine's jitter (tens of ms) stays small beside it. */
const ROUND_TRIP_MS = 80;
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
  it('raises the in-flight limit above its start while syncing and verifying, and the secondary ends equal to the primary', async () => {
    const initial = farClients();
    try {
      expect((await syncRepository(initial.p, initial.s, repo)).status).toBe('synced');
      expect(initial.p.transport.stats.limitMax).toBeGreaterThan(BASE_LIMIT);
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
        expect(side.transport.stats.limitMax).toBeGreaterThan(BASE_LIMIT);
        expect(side.transport.stats.limitMax).toBeLessThanOrEqual(64);
        expect(side.transport.stats.writes).toBe(0);
      }
    } finally {
      await again.close();
    }
  });
});
