import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { blobExists, deleteBlob, deleteManifest, getManifest, manifestExists, pushImage, pushManifest, pushMultiArch, readTags } from './support/seed.js';

let registries: RegistryPair;
let primary: RegistryClient;
let secondary: RegistryClient;

beforeAll(async () => {
  registries = await startRegistryPair();
  primary = new RegistryClient({ url: registries.primary.url });
  secondary = new RegistryClient({ url: registries.secondary.url });
});

afterAll(async () => {
  await Promise.all([primary?.close(), secondary?.close()]);
  await registries?.stop();
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

/** A client pair of its own, so a test can count exactly the requests of one run. */
function freshClients() {
  const p = new RegistryClient({ url: P() });
  const s = new RegistryClient({ url: S() });
  return { p, s, close: () => Promise.all([p.close(), s.close()]) };
}

describe('sync of one repository against two real registries', () => {
  it('copies missing tags, OCI and Docker v2 images alike', async () => {
    const repo = 'missing/app';
    await pushImage(P(), repo, 'v1', { format: 'oci' });
    await pushImage(P(), repo, 'v2', { format: 'docker' });
    await pushImage(P(), repo, 'latest', { format: 'oci', seed: 'latest' });

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));

    expect(report.status).toBe('synced');
    expect(report.done.copied).toEqual(['latest', 'v1', 'v2']);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    const v2 = await getManifest(S(), repo, 'v2');
    expect(Buffer.from(v2!.bytes)).toEqual(Buffer.from((await getManifest(P(), repo, 'v2'))!.bytes));
  });

  it('removes a tag that exists only on the secondary', async () => {
    const repo = 'extra/app';
    await pushImage(P(), repo, 'keep');
    await pushImage(S(), repo, 'keep');
    await pushImage(S(), repo, 'stray', { seed: 'stray' });

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));

    expect(report.done.removed).toEqual(['stray']);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('removes an extra tag that shares its digest with a kept tag, leaving the kept tag intact', async () => {
    const repo = 'shared/digest';
    const image = await pushImage(P(), repo, 'stable');
    await pushImage(P(), repo, 'v1');
    await syncRepository(primary, secondary, validateRepositoryName(repo));
    // On the secondary only: a second tag on the very manifest `stable` uses.
    await pushManifest(S(), repo, 'alias', image.bytes, image.mediaType);
    expect((await readTags(S(), repo)).alias).toBe(image.digest);

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));

    expect(report.done.removed).toEqual(['alias']);
    const tags = await readTags(S(), repo);
    expect(tags).toEqual(await readTags(P(), repo));
    expect(tags.stable).toBe(image.digest);
    expect(await manifestExists(S(), repo, image.digest)).toBe(true);
  });

  it('removes an extra tag that points at a child of a kept index without breaking the index', async () => {
    const repo = 'index/child';
    const { index, children } = await pushMultiArch(P(), repo, 'multi', 'oci');
    await syncRepository(primary, secondary, validateRepositoryName(repo));
    const child = children[0]!;
    await pushManifest(S(), repo, 'amd64-only', child.bytes, child.mediaType);

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));

    expect(report.done.removed).toEqual(['amd64-only']);
    expect(await readTags(S(), repo)).toEqual({ multi: index.digest });
    for (const c of children) expect(await manifestExists(S(), repo, c.digest)).toBe(true);
    expect(await blobExists(S(), repo, child.layerDigests[0]!)).toBe(true);
  });

  it('repairs a tag re-pushed on the secondary to another image, by PUT over it', async () => {
    const repo = 'repoint/app';
    const original = await pushImage(P(), repo, '1.4');
    await pushImage(S(), repo, '1.4', { seed: 'impostor' });
    expect((await readTags(S(), repo))['1.4']).not.toBe(original.digest);

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));

    expect(report.plan.repair).toEqual([{ tag: '1.4', primary: original.digest, secondary: expect.any(String) }]);
    expect(report.done.repaired).toEqual(['1.4']);
    expect((await readTags(S(), repo))['1.4']).toBe(original.digest);
  });

  it.each(['oci', 'docker'] as const)('copies a %s index byte-exact, with its children and their blobs', async (format) => {
    const repo = `multi/${format}`;
    const { index, children } = await pushMultiArch(P(), repo, 'latest', format);

    await syncRepository(primary, secondary, validateRepositoryName(repo));

    const copied = await getManifest(S(), repo, 'latest');
    expect(copied!.digest).toBe(index.digest);
    expect(copied!.mediaType).toBe(index.mediaType);
    expect(Buffer.from(copied!.bytes).equals(Buffer.from(index.bytes))).toBe(true);
    for (const child of children) {
      expect(Buffer.from((await getManifest(S(), repo, child.digest))!.bytes).equals(Buffer.from(child.bytes))).toBe(true);
      for (const blob of [child.configDigest, ...child.layerDigests]) expect(await blobExists(S(), repo, blob)).toBe(true);
    }
  });

  it('handles nested repository names', async () => {
    const repo = 'group/sub-group/deeper/my_app.v2';
    await pushImage(P(), repo, 'v1');
    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));
    expect(report.status).toBe('synced');
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('makes zero writes on a second sync of an unchanged repository', async () => {
    const repo = 'noop/app';
    await pushImage(P(), repo, 'a');
    await pushMultiArch(P(), repo, 'b', 'docker');
    await syncRepository(primary, secondary, validateRepositoryName(repo));

    const { p, s, close } = freshClients();
    const report = await syncRepository(p, s, validateRepositoryName(repo));
    await close();

    expect(report.status).toBe('synced');
    expect(report.plan).toEqual({ copy: [], repair: [], remove: [] });
    expect(s.stats.writes).toBe(0);
    expect(p.stats.writes).toBe(0);
    // Per side: the GitLab API probe, one listing, one HEAD per tag; on the primary also the one
    // referrers probe of the run (registry 2.8 has no referrers API, so the secondary is never asked).
    expect(s.stats.requests).toBe(1 + 1 + 2);
    expect(p.stats.requests).toBe(1 + 1 + 2 + 1);
  });

  it('copies a blob shared by many tags once and does not HEAD it twice', async () => {
    const repo = 'dedupe/app';
    const base = Buffer.alloc(64 * 1024, 7);
    for (const tag of ['t1', 't2', 't3', 't4']) await pushImage(P(), repo, tag, { sharedLayer: base });

    const { p, s, close } = freshClients();
    const report = await syncRepository(p, s, validateRepositoryName(repo));
    await close();

    // 4 configs + 4 own layers + 1 shared base layer.
    expect(report.blobsCopied).toBe(9);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });
});

describe('guards: nothing is removed without a complete listing of the primary', () => {
  it('fails without removing anything when the repository does not exist on the primary', async () => {
    const repo = 'gone/app';
    await pushImage(S(), repo, 'precious');

    await expect(syncRepository(primary, secondary, validateRepositoryName(repo))).rejects.toMatchObject({ code: 'REPOSITORY_NOT_FOUND', invalid: false });
    expect(Object.keys(await readTags(S(), repo))).toEqual(['precious']);
  });

  it('fails without removing anything when the primary is unreachable', async () => {
    const repo = 'unreachable/app';
    await pushImage(S(), repo, 'precious');
    const dead = new RegistryClient({ url: 'http://127.0.0.1:9' }, { retries: 1, backoff: { baseMs: 10, capMs: 20 } });

    await expect(syncRepository(dead, secondary, validateRepositoryName(repo))).rejects.toMatchObject({ code: 'REGISTRY_UNREACHABLE', invalid: false });
    await dead.close();
    expect(Object.keys(await readTags(S(), repo))).toEqual(['precious']);
  });

  it('holds the prune guard: copies and repairs, removes nothing, and explains', async () => {
    const repo = 'guard/app';
    await pushImage(P(), repo, 'kept');
    await pushImage(P(), repo, 'new');
    await pushImage(S(), repo, 'kept', { seed: 'old' });
    for (const tag of ['x1', 'x2', 'x3']) await pushImage(S(), repo, tag);

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo), { maxPrune: 0.5 });

    expect(report.status).toBe('differences');
    expect(report.guard?.reason).toMatch(/would remove 3 of 4 tags/);
    expect(report.done).toEqual({ copied: ['new'], repaired: ['kept'], removed: [] });
    expect(Object.keys(await readTags(S(), repo)).sort()).toEqual(['kept', 'new', 'x1', 'x2', 'x3']);

    const allowed = await syncRepository(primary, secondary, validateRepositoryName(repo), { maxPrune: 1 });
    expect(allowed.done.removed).toEqual(['x1', 'x2', 'x3']);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });
});

describe('deep verification and repair', () => {
  it('finds and repairs a deleted child manifest and a deleted layer blob', async () => {
    const repo = 'deep/app';
    const { children } = await pushMultiArch(P(), repo, 'multi', 'oci');
    const single = await pushImage(P(), repo, 'single');
    await syncRepository(primary, secondary, validateRepositoryName(repo));
    // Damage the secondary below the tags: the tags still verify, the images do not pull.
    await deleteManifest(S(), repo, children[1]!.digest);
    await deleteBlob(S(), repo, single.layerDigests[0]!);

    const shallow = await verifyRepository(primary, secondary, validateRepositoryName(repo));
    expect(shallow.status).toBe('synced');
    const { p, s, close } = freshClients();
    const deep = await verifyRepository(p, s, validateRepositoryName(repo), { deep: true });
    expect(deep.status).toBe('mismatch');
    expect(deep.deep!.missing.map((m) => `${m.kind} ${m.digest}`).sort()).toEqual([`manifest ${children[1]!.digest}`, `blob ${single.layerDigests[0]}`].sort());
    expect(s.stats.writes).toBe(0);
    await close();

    const fresh = freshClients();
    const repaired = await syncRepository(fresh.p, fresh.s, validateRepositoryName(repo), { deep: true });
    await fresh.close();
    expect(repaired.status).toBe('synced');
    expect(await manifestExists(S(), repo, children[1]!.digest)).toBe(true);
    expect(await blobExists(S(), repo, single.layerDigests[0]!)).toBe(true);
    const again = freshClients();
    expect((await verifyRepository(again.p, again.s, validateRepositoryName(repo), { deep: true })).status).toBe('synced');
    await again.close();
  });
});

describe('listings and mounts', () => {
  it('refills a repository whose tags were all deleted (the registry answers {"tags": null})', async () => {
    const repo = 'emptied/app';
    const image = await pushImage(P(), repo, 'v1');
    await syncRepository(primary, secondary, validateRepositoryName(repo));
    await deleteManifest(S(), repo, image.digest);
    expect(await readTags(S(), repo)).toEqual({});

    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));

    expect(report.done.copied).toEqual(['v1']);
    expect(await readTags(S(), repo)).toEqual({ v1: image.digest });
  });

  it('mounts a blob from another repository of the secondary instead of copying it again', async () => {
    const base = Buffer.alloc(256 * 1024, 3);
    await pushImage(P(), 'mount/one', 'v1', { sharedLayer: base });
    await pushImage(P(), 'mount/two', 'v1', { sharedLayer: base });
    const { p, s, close } = freshClients();
    const first = await syncRepository(p, s, validateRepositoryName('mount/one'));
    const second = await syncRepository(p, s, validateRepositoryName('mount/two'));
    await close();
    expect(first.blobsMounted).toBe(0);
    expect(second.blobsMounted).toBe(1);
    expect(second.bytesCopied).toBeLessThan(base.length);
    expect(await readTags(S(), 'mount/two')).toEqual(await readTags(P(), 'mount/two'));
  });

  it("pages through the catalog with the registry's relative Link headers", async () => {
    for (const repo of ['catalog/a', 'catalog/b', 'catalog/c']) await pushImage(P(), repo, 'v1');
    const seen: string[] = [];
    let last: string | undefined;
    let pages = 0;
    do {
      const page = await primary.listCatalogPage({ pageSize: 2, ...(last ? { last } : {}) });
      seen.push(...page.repositories);
      last = page.next;
      pages++;
    } while (last);
    expect(pages).toBeGreaterThan(2);
    expect(seen).toEqual(expect.arrayContaining(['catalog/a', 'catalog/b', 'catalog/c']));
    expect(new Set(seen).size).toBe(seen.length);
  });
});
