import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { deleteManifest, pushImage, readTags } from './support/seed.js';
import { runGeoSync } from './support/cli.js';

let registries: RegistryPair;
let proxy: FaultProxy;

beforeAll(async () => {
  registries = await startRegistryPair();
  proxy = await startFaultProxy(registries.primary.url);
});
afterAll(async () => {
  await proxy?.stop();
  await registries?.stop();
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

/** Runs one sync through the proxy; `change` mutates the real primary once, when `when` matches a request. */
async function syncWhile(repo: string, when: (method: string, path: string) => boolean, change: () => Promise<void>) {
  let pending: Promise<void> | undefined;
  proxy.setRule(({ method, path }) => {
    if (!pending && when(method, path)) {
      pending = change();
      // Hold this request until the primary has changed under it.
      return { kind: 'delay', ms: 300 };
    }
    return undefined;
  });
  const primary = new RegistryClient({ url: proxy.url });
  const secondary = new RegistryClient({ url: S() });
  try {
    return await syncRepository(primary, secondary, validateRepositoryName(repo), { maxPrune: 1 });
  } finally {
    proxy.setRule(() => undefined);
    await pending;
    await Promise.all([primary.close(), secondary.close()]);
  }
}

describe('the primary changes during a sync', () => {
  it('a tag moved after planning is copied in its newer state', async () => {
    const repo = 'race/moved';
    await pushImage(P(), repo, 'v1');
    let moved = '';
    const report = await syncWhile(
      repo,
      (m, p) => m === 'GET' && p.endsWith('/manifests/v1'),
      async () => {
        moved = (await pushImage(P(), repo, 'v1', { seed: 'newer' })).digest;
      },
    );
    expect(report.status).toBe('synced');
    expect((await readTags(S(), repo)).v1).toBe(moved);
  });

  it('a tag moved after its copy was read is named as moved, not called synced', async () => {
    const repo = 'race/moved-after-copy';
    await pushImage(P(), repo, 'v1');
    let moved = '';
    // The manifest is read; while its blobs are fetched, the tag moves on.
    const report = await syncWhile(
      repo,
      (m, p) => m === 'GET' && p.includes('/blobs/'),
      async () => {
        moved = (await pushImage(P(), repo, 'v1', { seed: 'moved while copying' })).digest;
      },
    );
    expect(report.status).toBe('differences');
    expect(report.skipped).toEqual([{ tag: 'v1', reason: expect.stringContaining(`moved on the primary during the sync (now ${moved})`) }]);
    const next = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()]);
    expect(next.code).toBe(0);
    expect((await readTags(S(), repo)).v1).toBe(moved);
  });

  it('a tag already in sync that moves while other tags are copied is named, not called synced', async () => {
    const repo = 'race/moved-unplanned';
    await pushImage(P(), repo, 'stable');
    expect((await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()])).code).toBe(0);
    await pushImage(P(), repo, 'new');
    let moved = '';
    const report = await syncWhile(
      repo,
      (m, p) => m === 'GET' && p.endsWith('/manifests/new'),
      async () => {
        moved = (await pushImage(P(), repo, 'stable', { seed: 'moved meanwhile' })).digest;
      },
    );
    expect(report.done.copied).toEqual(['new']);
    expect(report.status).toBe('differences');
    expect(report.skipped).toEqual([{ tag: 'stable', reason: expect.stringContaining('moved on the primary during the sync') }]);
    expect((await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()])).code).toBe(0);
    expect((await readTags(S(), repo)).stable).toBe(moved);
  });

  it('a tag added after listing makes the run report differences, not synced', async () => {
    const repo = 'race/added';
    await pushImage(P(), repo, 'v1');
    const report = await syncWhile(
      repo,
      (m, p) => m === 'GET' && p.endsWith('/manifests/v1'),
      async () => {
        await pushImage(P(), repo, 'late');
      },
    );
    expect(report.status).toBe('differences');
    expect(report.skipped).toEqual([{ tag: 'late', reason: expect.stringMatching(/added on the primary/) }]);
    const next = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()]);
    expect(next.code).toBe(0);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('a tag that reappears on the primary before removal is not removed', async () => {
    const repo = 'race/reappeared';
    await pushImage(P(), repo, 'v1');
    const comeback = await pushImage(S(), repo, 'comeback');
    await syncWhile(
      repo,
      (m, p) => m === 'GET' && p.endsWith('/manifests/v1'),
      async () => {
        await pushImage(P(), repo, 'comeback');
      },
    ).then((report) => {
      expect(report.done.removed).toEqual([]);
      expect(report.status).toBe('differences');
    });
    expect((await readTags(S(), repo)).comeback).toBe(comeback.digest);
  });

  it('a tag deleted on the primary during the copy is skipped and reported', async () => {
    const repo = 'race/deleted';
    await pushImage(P(), repo, 'keep');
    const doomed = await pushImage(P(), repo, 'doomed');
    // The copy's own GET is held until the tag is gone, so it finds nothing.
    const report = await syncWhile(
      repo,
      (m, p) => m === 'GET' && p.endsWith('/manifests/doomed'),
      async () => {
        await deleteManifest(P(), repo, doomed.digest);
      },
    );
    expect(report.status).toBe('differences');
    expect(report.skipped.map((s) => s.tag)).toEqual(['doomed']);
    expect(Object.keys(await readTags(S(), repo))).toEqual(['keep']);
  });
});

describe('two syncs of one repository at once', () => {
  it('the second CLI process declines while the first holds the lock; nothing is corrupted', async () => {
    const repo = 'race/twice';
    for (const tag of ['a', 'b', 'c']) await pushImage(P(), repo, tag);
    // Slow the first run's reads of the primary so the second starts while it is still working.
    proxy.setRule(({ method, path }) => (method === 'GET' && path.includes('/manifests/') ? { kind: 'delay', ms: 400 } : undefined));
    const { spawnGeoSync } = await import('./support/cli.js');
    try {
      const first = spawnGeoSync(['sync', repo, '--primary', proxy.url, '--secondary', S()]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const second = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()]);
      const firstResult = await first.done;
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/another geo-sync \(pid \d+, since .*\) is syncing race\/twice/);
      expect(firstResult.code).toBe(0);
    } finally {
      proxy.setRule(() => undefined);
    }
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    expect((await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()])).code).toBe(0);
  });
});
