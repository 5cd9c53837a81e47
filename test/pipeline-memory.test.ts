// The pipeline between two registries held in memory: what a sync copies, repairs and removes,
// without a registry process. The same behaviours are tested against real registries elsewhere.
import { describe, expect, it } from 'vitest';
import { syncRepository, syncTags, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { MediaType, digestOf, type RawManifest } from '../shared/engine/base/oci.js';
import { MemoryRegistry, type MemoryRegistryOptions } from './support/memory-registry.js';

const repo = validateRepositoryName('team/app');

/** Pushes a one-layer image under `tag`; `seed` fixes its bytes (two tags with one seed share a digest). */
function pushImage(registry: MemoryRegistry, tag: string, seed = tag, stored: string = repo): RawManifest {
  const config = registry.seedBlob(
    stored,
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed })),
    'application/vnd.oci.image.config.v1+json',
  );
  const layer = registry.seedBlob(stored, Buffer.from(`the layer of ${seed}`), 'application/vnd.oci.image.layer.v1.tar');
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] }));
  const manifest = { digest: digestOf(bytes), mediaType: MediaType.ociManifest, bytes };
  registry.seedManifest(stored, manifest, tag);
  return manifest;
}

function pair(secondary: MemoryRegistryOptions = {}) {
  return { primary: new MemoryRegistry({ host: 'primary' }), secondary: new MemoryRegistry({ host: 'secondary', ...secondary }) };
}

describe.each([
  { deletes: 'by tag', options: {} },
  { deletes: 'by digest only (registry 2.8)', options: { deleteByTag: false } },
])('a full sync between registries in memory, deleting $deletes', ({ options }) => {
  it('copies what the secondary lacks, then a second run writes nothing and verify agrees', async () => {
    const { primary, secondary } = pair(options);
    for (const tag of ['v1', 'v2', 'latest']) pushImage(primary, tag);

    const report = await syncRepository(primary, secondary, repo);

    expect(report.status).toBe('synced');
    expect(report.done).toEqual({ copied: ['latest', 'v1', 'v2'], repaired: [], removed: [] });
    expect(secondary.tagsOf(repo)).toEqual(primary.tagsOf(repo));
    const writes = secondary.stats.writes;
    const again = await syncRepository(primary, secondary, repo);
    expect(again.done).toEqual({ copied: [], repaired: [], removed: [] });
    expect(secondary.stats.writes).toBe(writes);
    expect((await verifyRepository(primary, secondary, repo)).status).toBe('synced');
  });

  it('repairs a tag at another digest', async () => {
    const { primary, secondary } = pair(options);
    pushImage(primary, 'v1');
    pushImage(secondary, 'v1', 'an older build');

    const report = await syncRepository(primary, secondary, repo);

    expect(report.done).toEqual({ copied: [], repaired: ['v1'], removed: [] });
    expect(secondary.tagsOf(repo)).toEqual(primary.tagsOf(repo));
  });

  it('removes an extra tag and leaves another tag on the same digest where it is', async () => {
    const { primary, secondary } = pair(options);
    pushImage(primary, 'v1');
    pushImage(primary, 'stable', 'shared');
    pushImage(secondary, 'v1');
    pushImage(secondary, 'stable', 'shared');
    const shared = pushImage(secondary, 'old', 'shared');

    const report = await syncRepository(primary, secondary, repo, { maxPrune: 1 });

    expect(report.status).toBe('synced');
    expect(report.done.removed).toEqual(['old']);
    expect(secondary.tagsOf(repo)).toEqual({ stable: shared.digest, v1: primary.tagsOf(repo).v1 });
    expect((await verifyRepository(primary, secondary, repo)).status).toBe('synced');
  });

  it('holds the prune guard: copies and repairs, removes nothing, and explains', async () => {
    const { primary, secondary } = pair(options);
    pushImage(primary, 'kept');
    pushImage(primary, 'new');
    pushImage(secondary, 'kept', 'old');
    for (const tag of ['x1', 'x2', 'x3']) pushImage(secondary, tag);

    const report = await syncRepository(primary, secondary, repo, { maxPrune: 0.5 });

    expect(report.status).toBe('differences');
    expect(report.guard?.reason).toMatch(/would remove 3 of 4 tags/);
    expect(report.done).toEqual({ copied: ['new'], repaired: ['kept'], removed: [] });
    expect(Object.keys(secondary.tagsOf(repo))).toEqual(['kept', 'new', 'x1', 'x2', 'x3']);
    expect((await verifyRepository(primary, secondary, repo)).status).toBe('mismatch');
  });
});

describe('syncTags between registries in memory', () => {
  it('copies, repairs and removes the named tags only', async () => {
    const { primary, secondary } = pair();
    pushImage(primary, 'v1');
    pushImage(primary, 'v2');
    pushImage(secondary, 'v2', 'stale');
    pushImage(secondary, 'gone');
    pushImage(secondary, 'other');

    const report = await syncTags(primary, secondary, repo, ['v1', 'v2', 'gone']);

    expect(report.status).toBe('synced');
    expect(report.done).toEqual({ copied: ['v1'], repaired: ['v2'], removed: ['gone'] });
    expect(Object.keys(secondary.tagsOf(repo))).toEqual(['other', 'v1', 'v2']);
  });

  it('does not remove a tag whose repository the primary does not have', async () => {
    const { primary, secondary } = pair();
    pushImage(secondary, 'precious');

    const report = await syncTags(primary, secondary, repo, ['precious']);

    expect(report.done.removed).toEqual([]);
    expect(report.failed).toEqual([{ tag: 'precious', error: expect.stringMatching(/does not exist on the primary/) }]);
    expect(Object.keys(secondary.tagsOf(repo))).toEqual(['precious']);
  });

  it('writes under the secondary prefix only', async () => {
    const { primary, secondary } = pair({ prefix: 'dr/' });
    pushImage(primary, 'v1');

    const report = await syncTags(primary, secondary, repo, ['v1']);

    expect(report.done.copied).toEqual(['v1']);
    expect(secondary.tagsOf(`dr/${repo}`)).toEqual(primary.tagsOf(repo));
    expect(secondary.tagsOf(repo)).toEqual({});
  });
});

describe('the tag listing capability', () => {
  it('reads digests from a listing that gives them, without a HEAD per tag', async () => {
    const primary = new MemoryRegistry({ host: 'primary', listsDigests: true });
    const secondary = new MemoryRegistry({ host: 'secondary' });
    for (const tag of ['a', 'b', 'c']) pushImage(primary, tag);
    const heads: string[] = [];
    const head = primary.headManifest.bind(primary);
    primary.headManifest = (repository, reference) => (heads.push(reference), head(repository, reference));

    const verify = await verifyRepository(primary, secondary, repo);

    expect(verify.status).toBe('mismatch');
    expect(heads).toEqual([]);
  });
});
