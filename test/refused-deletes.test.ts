import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { DELETE_PROBE_DIGEST } from '../shared/engine/registry/client.js';
import { THROWAWAY_ANNOTATION } from '../shared/engine/sync/tag-removal.js';
import { runGeoSync } from './support/cli.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { getManifest, pushImage, pushManifest, readTags } from './support/seed.js';
import { storedThrowaways } from './support/soak.js';

// Secondaries that will not delete: docker-registry's packaged default (storage.delete.enabled:
// false) and a registry in maintenance (storage.maintenance.readonly), which refuses every write.
let primary: TestRegistry;
let noDeletes: TestRegistry;
/** Writable; the read-only registry below serves the same storage. */
let writable: TestRegistry;
let readOnly: TestRegistry;
let deletable: TestRegistry;
let proxy: FaultProxy;

beforeAll(async () => {
  [primary, noDeletes, writable, deletable] = await Promise.all([
    startRegistry(),
    startRegistry({ env: { REGISTRY_STORAGE_DELETE_ENABLED: 'false' } }),
    startRegistry(),
    startRegistry(),
  ]);
  readOnly = await startRegistry({
    env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: writable.root, REGISTRY_STORAGE_MAINTENANCE_READONLY: '{"enabled": true}' },
  });
  proxy = await startFaultProxy(deletable.url);
});
afterAll(async () => {
  await proxy?.stop();
  await Promise.all([primary, noDeletes, writable, readOnly, deletable].map((registry) => registry?.stop()));
});

const P = () => primary.url;

/** Tags of a registry that point at one of our throwaway manifests. */
async function throwawayTags(url: string, repo: string): Promise<string[]> {
  const found: string[] = [];
  for (const tag of Object.keys(await readTags(url, repo))) {
    const manifest = await getManifest(url, repo, tag);
    if (Buffer.from(manifest!.bytes).toString('utf8').includes(THROWAWAY_ANNOTATION)) found.push(tag);
  }
  return found.sort();
}

/**
 * Primary a, b, c; secondary a, b (another image), and extra x (its own image) and y (on a's
 * manifest). c is missing on the secondary. Returns what the secondary held before the sync.
 */
async function seedScenario(secondaryUrl: string, repo: string): Promise<Record<string, string>> {
  const a = await pushImage(P(), repo, 'a');
  await pushImage(P(), repo, 'b');
  await pushImage(P(), repo, 'c');
  expect((await pushImage(secondaryUrl, repo, 'a')).digest).toBe(a.digest);
  await pushImage(secondaryUrl, repo, 'b', { seed: 'stale' });
  await pushImage(secondaryUrl, repo, 'x', { seed: 'extra' });
  await pushManifest(secondaryUrl, repo, 'y', a.bytes, a.mediaType);
  return readTags(secondaryUrl, repo);
}

/** a, b and c as on the primary; x and y exactly as they were; no throwaway tagged or stored. */
async function expectCopiedAndExtrasUntouched(secondaryUrl: string, root: string, repo: string, before: Record<string, string>): Promise<void> {
  const primaryTags = await readTags(P(), repo);
  expect(await readTags(secondaryUrl, repo)).toEqual({ ...primaryTags, x: before.x, y: before.y });
  expect(await throwawayTags(secondaryUrl, repo)).toEqual([]);
  expect(storedThrowaways(root, repo)).toBe(0);
}

describe('a secondary that refuses deletes (storage.delete.enabled: false)', () => {
  let client: { p: RegistryClient; s: RegistryClient };
  beforeAll(() => {
    client = { p: new RegistryClient({ url: P() }), s: new RegistryClient({ url: noDeletes.url }) };
  });
  afterAll(() => Promise.all([client?.p.close(), client?.s.close()]));

  it('copies and repairs, leaves every extra tag exactly as it was, and names them: differences', async () => {
    const repo = 'refused/engine';
    const before = await seedScenario(noDeletes.url, repo);

    const report = await syncRepository(client.p, client.s, validateRepositoryName(repo), { maxPrune: 1 });

    expect(report.status).toBe('differences');
    expect(report.done).toEqual({ copied: ['c'], repaired: ['b'], removed: [] });
    expect(report.failed).toEqual([]);
    expect(report.removalRefused).toEqual({ reason: expect.stringMatching(/refuses deletes/), tags: ['x', 'y'] });
    expect(report.removalRefused!.reason).toContain(noDeletes.host);
    await expectCopiedAndExtrasUntouched(noDeletes.url, noDeletes.root, repo, before);
  });

  it('sync --json exits 1 with removalRefused; the summary says so in plain words; plan says so before', async () => {
    const repo = 'refused/cli';
    const before = await seedScenario(noDeletes.url, repo);
    const env = { GEO_SYNC_PRIMARY_URL: P(), GEO_SYNC_SECONDARY_URL: noDeletes.url };

    const plan = await runGeoSync(['plan', repo], env);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/not removed: x, y\n\s+the secondary .* refuses deletes/);
    expect(await readTags(noDeletes.url, repo)).toEqual(before);

    const json = await runGeoSync(['sync', repo, '--json', '--max-prune', '1'], env);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ status: 'differences', failed: [], done: { copied: ['c'], repaired: ['b'], removed: [] } });
    expect(report.removalRefused).toEqual({ reason: expect.stringMatching(/refuses deletes/), tags: ['x', 'y'] });
    expect(json.stderr).not.toMatch(/405/);
    await expectCopiedAndExtrasUntouched(noDeletes.url, noDeletes.root, repo, before);

    const human = await runGeoSync(['sync', repo, '--max-prune', '1'], env);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^refused\/cli: differences/);
    expect(human.stdout).toMatch(/not removed: x, y\n\s+the secondary .* refuses deletes/);
    await expectCopiedAndExtrasUntouched(noDeletes.url, noDeletes.root, repo, before);
  });
});

describe('a read-only secondary (storage.maintenance.readonly)', () => {
  it('fails once, before any write, naming the secondary: exit 3, nothing changed', async () => {
    const repo = 'readonly/app';
    const before = await seedScenario(writable.url, repo);
    const env = { GEO_SYNC_PRIMARY_URL: P(), GEO_SYNC_SECONDARY_URL: readOnly.url };

    const p = new RegistryClient({ url: P() });
    const s = new RegistryClient({ url: readOnly.url });
    try {
      await expect(syncRepository(p, s, validateRepositoryName(repo), { maxPrune: 1 })).rejects.toMatchObject({ code: 'SECONDARY_READ_ONLY', invalid: false });
      // The one write sent is the harmless delete probe.
      expect(s.stats.writes).toBe(1);
    } finally {
      await Promise.all([p.close(), s.close()]);
    }

    // A plan only reads, and says that the removals could not happen.
    const plan = await runGeoSync(['plan', repo], env);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/not removed: x, y\n\s+the secondary .* is read-only and refuses deletes/);

    const json = await runGeoSync(['sync', repo, '--json', '--max-prune', '1'], env);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout).error).toEqual({ code: 'SECONDARY_READ_ONLY', message: expect.stringContaining(readOnly.host) });
    const human = await runGeoSync(['sync', repo, '--max-prune', '1'], env);
    expect(human.code).toBe(3);
    expect(human.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^geo-sync: the secondary .* is read-only/)]);

    expect(await readTags(writable.url, repo)).toEqual(before);
    expect(storedThrowaways(writable.root, repo)).toBe(0);
  });

  it('also when there is only something to copy', async () => {
    const repo = 'readonly/copy-only';
    await pushImage(P(), repo, 'v1');
    const result = await runGeoSync(['sync', repo, '--json'], { GEO_SYNC_PRIMARY_URL: P(), GEO_SYNC_SECONDARY_URL: readOnly.url });
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout).error.code).toBe('SECONDARY_READ_ONLY');
    expect(await readTags(writable.url, repo)).toEqual({});
  });
});

describe('a secondary that starts refusing deletes after the probe', () => {
  it('puts a tag already pointed at a throwaway back on its manifest, and says the secondary refuses deletes', async () => {
    const repo = 'refused/midway';
    const keep = await pushImage(P(), repo, 'keep');
    await pushImage(deletable.url, repo, 'keep');
    await pushImage(deletable.url, repo, 'extra', { seed: 'extra' });
    await pushManifest(deletable.url, repo, 'alias', keep.bytes, keep.mediaType);
    const before = await readTags(deletable.url, repo);
    // The probe passes; every other manifest DELETE (the throwaway's) is refused as by a registry
    // whose deletes were just disabled.
    proxy.setRule(({ method, path }) =>
      method === 'DELETE' && path.includes('/manifests/sha256:') && !path.endsWith(DELETE_PROBE_DIGEST)
        ? { kind: 'status', status: 405, headers: {} }
        : undefined,
    );
    const p = new RegistryClient({ url: P() });
    const s = new RegistryClient({ url: proxy.url });
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo), { maxPrune: 1 });

      expect(report.status).toBe('differences');
      expect(report.done.removed).toEqual([]);
      expect(report.failed).toEqual([]);
      expect(report.removalRefused).toEqual({ reason: expect.stringMatching(/refuses deletes/), tags: ['alias', 'extra'] });
    } finally {
      proxy.setRule(() => undefined);
      await Promise.all([p.close(), s.close()]);
    }
    // The throwaway trick did start: the tag was pointed at a throwaway before the refusal.
    expect(proxy.log.some((r) => r.method === 'PUT' && /\/manifests\/(alias|extra)$/.test(r.path))).toBe(true);
    expect(await readTags(deletable.url, repo)).toEqual(before);
    expect(await throwawayTags(deletable.url, repo)).toEqual([]);
  });

  it('when even putting the tag back is refused, names the tag as failed, and a later sync that may delete cleans up', async () => {
    const repo = 'refused/stuck';
    await pushImage(P(), repo, 'keep');
    await pushImage(deletable.url, repo, 'keep');
    await pushImage(deletable.url, repo, 'extra', { seed: 'extra' });
    // The registry turns read-only between pointing the tag at the throwaway and deleting it.
    let tagWrites = 0;
    proxy.setRule(({ method, path }) => {
      if (method === 'PUT' && path.endsWith('/manifests/extra') && ++tagWrites > 1) return { kind: 'status', status: 405, headers: { allow: 'GET, HEAD' } };
      if (method === 'DELETE' && path.includes('/manifests/sha256:') && !path.endsWith(DELETE_PROBE_DIGEST))
        return { kind: 'status', status: 405, headers: { allow: 'GET, HEAD' } };
      return undefined;
    });
    const p = new RegistryClient({ url: P() });
    const s = new RegistryClient({ url: proxy.url });
    try {
      const report = await syncRepository(p, s, validateRepositoryName(repo), { maxPrune: 1 });

      expect(report.status).toBe('failed');
      expect(report.removalRefused).toBeUndefined();
      expect(report.failed).toEqual([
        {
          tag: 'extra',
          error: expect.stringMatching(
            /is read-only.*extra could not be put back on sha256:[0-9a-f]{64}.*points at a throwaway manifest until a sync can delete it/,
          ),
        },
      ]);
    } finally {
      proxy.setRule(() => undefined);
      await Promise.all([p.close(), s.close()]);
    }
    expect(tagWrites).toBe(2);
    expect(await throwawayTags(deletable.url, repo)).toEqual(['extra']);

    const again = await runGeoSync(['sync', repo, '--json'], { GEO_SYNC_PRIMARY_URL: P(), GEO_SYNC_SECONDARY_URL: deletable.url });
    expect(again.code).toBe(0);
    expect(await readTags(deletable.url, repo)).toEqual(await readTags(P(), repo));
    expect(storedThrowaways(deletable.root, repo)).toBe(0);
  });
});
