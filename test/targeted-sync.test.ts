// syncTags against two real registries: a few named tags made exact, at a cost that does not grow
// with the repository, counted per request by proxies in front of both sides.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncTags } from '../shared/engine/index.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistry, startRegistryPair, type RegistryPair } from './support/registry.js';
import { deleteManifest, manifestExists, pushImage, pushManifest, readTags } from './support/seed.js';

let registries: RegistryPair;
let primaryProxy: FaultProxy;
let secondaryProxy: FaultProxy;

beforeAll(async () => {
  registries = await startRegistryPair();
  [primaryProxy, secondaryProxy] = await Promise.all([startFaultProxy(registries.primary.url), startFaultProxy(registries.secondary.url)]);
});
afterAll(async () => {
  await Promise.all([primaryProxy?.stop(), secondaryProxy?.stop()]);
  await registries?.stop();
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

/** One targeted sync through both proxies, with the requests each side received. */
async function syncThroughProxies(repository: string, tags: string[]) {
  const before = { primary: primaryProxy.log.length, secondary: secondaryProxy.log.length };
  const primary = new RegistryClient({ url: primaryProxy.url });
  const secondary = new RegistryClient({ url: secondaryProxy.url });
  try {
    const report = await syncTags(primary, secondary, repository, tags);
    const sent = [...primaryProxy.log.slice(before.primary), ...secondaryProxy.log.slice(before.secondary)];
    return { report, sent, writes: secondaryProxy.log.slice(before.secondary).filter((r) => r.method !== 'GET' && r.method !== 'HEAD') };
  } finally {
    await Promise.all([primary.close(), secondary.close()]);
  }
}

/** A repository of `size` tags, the same on both sides: one image, tagged `t0`…, one PUT per tag. */
async function seedInSync(repository: string, size: number): Promise<void> {
  for (const url of [P(), S()]) {
    const image = await pushImage(url, repository, 't0', { seed: 'base' });
    for (let i = 1; i < size; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, size - i) }, (_, j) => pushManifest(url, repository, `t${i + j}`, image.bytes, image.mediaType)));
    }
  }
}

const notBlobs = (sent: { path: string }[]) => sent.filter((r) => !r.path.includes('/blobs/'));

describe('syncTags: the named tags made exact, the rest untouched', () => {
  it('copies a pushed tag and touches no other', async () => {
    const repo = 'targeted/push';
    await pushImage(P(), repo, 'v1');
    await pushImage(P(), repo, 'v2', { seed: 'v2' });

    const { report } = await syncThroughProxies(repo, ['v2']);

    expect(report).toMatchObject({ status: 'synced', tags: ['v2'], done: { copied: ['v2'], repaired: [], removed: [] }, skipped: [], failed: [] });
    expect(await readTags(S(), repo)).toEqual({ v2: (await readTags(P(), repo)).v2 });
  });

  it('repairs a moved tag in place', async () => {
    const repo = 'targeted/moved';
    await pushImage(P(), repo, 'latest', { seed: 'new' });
    await pushImage(S(), repo, 'latest', { seed: 'old' });

    const { report } = await syncThroughProxies(repo, ['latest']);

    expect(report.done).toEqual({ copied: [], repaired: ['latest'], removed: [] });
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('removes a tag the primary deleted, leaving a tag on the same digest and the manifest intact', async () => {
    const repo = 'targeted/shared';
    const image = await pushImage(P(), repo, 'kept');
    await pushImage(S(), repo, 'kept');
    await pushManifest(S(), repo, 'gone', image.bytes, image.mediaType);

    const { report } = await syncThroughProxies(repo, ['gone']);

    expect(report).toMatchObject({ status: 'synced', done: { removed: ['gone'] } });
    expect(await readTags(S(), repo)).toEqual({ kept: image.digest });
    expect(await manifestExists(S(), repo, image.digest)).toBe(true);
  });

  it('after a digest delete on the primary, removes exactly the tags that were on it', async () => {
    const repo = 'targeted/digest-delete';
    const doomed = await pushImage(P(), repo, 'a', { seed: 'doomed' });
    await pushManifest(P(), repo, 'b', doomed.bytes, doomed.mediaType);
    const survivor = await pushImage(P(), repo, 'c', { seed: 'survivor' });
    await pushImage(S(), repo, 'a', { seed: 'doomed' });
    await pushManifest(S(), repo, 'b', doomed.bytes, doomed.mediaType);
    await pushImage(S(), repo, 'c', { seed: 'survivor' });
    await deleteManifest(P(), repo, doomed.digest);

    // The registry sends one tag delete per tag after the digest delete: a and b.
    const { report } = await syncThroughProxies(repo, ['a', 'b']);

    expect(report.done.removed).toEqual(['a', 'b']);
    expect(await readTags(S(), repo)).toEqual({ c: survivor.digest });
  });

  it('a delete named for a tag the primary still has removes nothing and writes nothing', async () => {
    const repo = 'targeted/still-there';
    await pushImage(P(), repo, 'v1');
    await pushImage(S(), repo, 'v1');

    const { report, writes } = await syncThroughProxies(repo, ['v1']);

    expect(report).toMatchObject({ status: 'synced', unchanged: ['v1'], done: { copied: [], repaired: [], removed: [] } });
    expect(writes).toEqual([]);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('a tag neither side has, or a repository the primary lacks, changes nothing', async () => {
    const repo = 'targeted/forged';
    await pushImage(P(), repo, 'real');
    await pushImage(S(), 'targeted/only-secondary', 'v1');

    const missingTag = await syncThroughProxies(repo, ['never-pushed']);
    const missingRepository = await syncThroughProxies('targeted/only-secondary', ['v1']);

    expect(missingTag.report).toMatchObject({ status: 'synced', unchanged: ['never-pushed'] });
    expect(missingTag.writes).toEqual([]);
    expect(missingRepository.report.status).toBe('failed');
    expect(missingRepository.report.failed[0]!.error).toMatch(/does not exist on the primary.*not removed/);
    expect(missingRepository.writes).toEqual([]);
    expect(await readTags(S(), 'targeted/only-secondary')).toHaveProperty('v1');
    expect(await readTags(S(), repo)).toEqual({});
  });

  it('on a secondary that refuses deletes, leaves a tag gone from the primary as it was and says why, and still copies', async () => {
    const repo = 'targeted/refused';
    const refusing = await startRegistry({ env: { REGISTRY_STORAGE_DELETE_ENABLED: 'false' } });
    const primary = new RegistryClient({ url: P() });
    const secondary = new RegistryClient({ url: refusing.url });
    try {
      await pushImage(P(), repo, 'new');
      const stale = await pushImage(refusing.url, repo, 'gone');

      const report = await syncTags(primary, secondary, repo, ['gone', 'new']);

      expect(report).toMatchObject({
        status: 'differences',
        done: { copied: ['new'], removed: [] },
        removalRefused: { tags: ['gone'], reason: expect.stringMatching(/refuses deletes/) },
      });
      expect((await readTags(refusing.url, repo)).gone).toBe(stale.digest);
    } finally {
      await Promise.all([primary.close(), secondary.close()]);
      await refusing.stop();
    }
  });

  it('names a tag the primary moved after it was copied, never calling it synced', async () => {
    const repo = 'targeted/race';
    await pushImage(P(), repo, 'v1');
    let moved: Promise<unknown> | undefined;
    secondaryProxy.setRule(({ method, path }) => {
      if (moved || method !== 'PUT' || !path.endsWith(`/${repo}/manifests/v1`)) return undefined;
      moved = pushImage(P(), repo, 'v1', { seed: 'newer' });
      return { kind: 'delay', ms: 300 };
    });
    try {
      const { report } = await syncThroughProxies(repo, ['v1']);
      expect(report.status).toBe('differences');
      expect(report.skipped).toEqual([{ tag: 'v1', reason: expect.stringMatching(/^moved on the primary during the sync/) }]);
    } finally {
      secondaryProxy.setRule(() => undefined);
      await moved;
    }
  });

  it('names a tag whose primary does not show the digest a push announced, after doing what the primary holds', async () => {
    const repo = 'targeted/announced';
    const now = await pushImage(P(), repo, 'v1', { seed: 'now' });
    const announced = `sha256:${'f'.repeat(64)}`;

    const primary = new RegistryClient({ url: P() });
    const secondary = new RegistryClient({ url: S() });
    try {
      const stale = await syncTags(primary, secondary, repo, ['v1'], { announced: { v1: announced } });
      const settled = await syncTags(primary, secondary, repo, ['v1'], { announced: { v1: now.digest } });
      expect(stale).toMatchObject({ status: 'synced', done: { copied: ['v1'] }, unsettled: ['v1'] });
      expect(settled).toMatchObject({ status: 'synced', unchanged: ['v1'], unsettled: [] });
    } finally {
      await Promise.all([primary.close(), secondary.close()]);
    }
    expect((await readTags(S(), repo)).v1).toBe(now.digest);
  });

  it('costs the same few requests per pushed tag in a repository of 10 tags as in one of 1,000', async () => {
    const counts: Record<number, { pushed: number; moved: number }> = {};
    for (const size of [10, 1000]) {
      const repo = `targeted/size-${size}`;
      await seedInSync(repo, size);
      await pushImage(P(), repo, 'pushed', { seed: 'pushed' });
      await pushImage(P(), repo, 't0', { seed: 'moved' });

      const pushed = await syncThroughProxies(repo, ['pushed']);
      const moved = await syncThroughProxies(repo, ['t0']);

      expect(pushed.report.done.copied).toEqual(['pushed']);
      expect(moved.report.done.repaired).toEqual(['t0']);
      expect([...pushed.sent, ...moved.sent].some((r) => r.path.includes('/tags/list'))).toBe(false);
      counts[size] = { pushed: notBlobs(pushed.sent).length, moved: notBlobs(moved.sent).length };
    }
    expect(counts[1000]).toEqual(counts[10]);
    // A pushed tag: the primary's referrers probe (one per run: registry 2.8 answers 404, so no
    // referrers are read), a HEAD on each side, the manifest's GET and PUT, the closing HEAD. A moved
    // one here also GETs the manifest it replaced: small enough to be a throwaway a killed run left.
    expect(counts[10]).toEqual({ pushed: 6, moved: 7 });
  });
});
