// Referrers (OCI 1.1) made part of "exact": against go-containerregistry's registry, which serves
// the referrers API, and Debian's docker-registry 2.8, which does not (the tag schema there).
// Every outcome is read back over HTTP from the registries themselves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, syncTags, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGeoSync, spawnGeoSync } from './support/cli.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { REFERRERS_REGISTRY_START_TIMEOUT_MS, startReferrersRegistry, type ReferrersRegistry } from './support/referrers-registry.js';
import {
  Artifact,
  pushReferrer,
  pushReferrersTagIndex,
  pushSbom,
  pushSignature,
  readReferrers,
  readReferrersTagIndex,
  referrersTag,
} from './support/referrers.js';
import { freePort, startRegistry, type TestRegistry } from './support/registry.js';
import { deleteManifest, getManifest, manifestExists, pushImage, pushManifest, pushMultiArch, readTags } from './support/seed.js';

let apiPrimary: ReferrersRegistry;
let apiSecondary: ReferrersRegistry;
/** docker-registry 2.8: no referrers API. */
let plainSecondary: TestRegistry;
let plainPrimary: TestRegistry;

beforeAll(async () => {
  [apiPrimary, apiSecondary, plainSecondary, plainPrimary] = await Promise.all([
    startReferrersRegistry(),
    startReferrersRegistry(),
    startRegistry(),
    startRegistry(),
  ]);
}, REFERRERS_REGISTRY_START_TIMEOUT_MS);
afterAll(async () => {
  await Promise.all([apiPrimary, apiSecondary, plainSecondary, plainPrimary].map((registry) => registry?.stop()));
});

async function withClients<T>(primaryUrl: string, secondaryUrl: string, work: (p: RegistryClient, s: RegistryClient) => Promise<T>): Promise<T> {
  const p = new RegistryClient({ url: primaryUrl });
  const s = new RegistryClient({ url: secondaryUrl });
  try {
    return await work(p, s);
  } finally {
    await Promise.all([p.close(), s.close()]);
  }
}

const sync = (primaryUrl: string, secondaryUrl: string, repo: string, options: Parameters<typeof syncRepository>[3] = {}) =>
  withClients(primaryUrl, secondaryUrl, (p, s) => syncRepository(p, s, validateRepositoryName(repo), options));
const verify = (primaryUrl: string, secondaryUrl: string, repo: string, options: Parameters<typeof verifyRepository>[3] = {}) =>
  withClients(primaryUrl, secondaryUrl, (p, s) => verifyRepository(p, s, validateRepositoryName(repo), options));
const digests = (list: { digest: string }[]) => list.map((r) => r.digest).sort();

/** `app:v1` with a signature and an SBOM, and a signature of the SBOM (depth 2), as signing tools push them. */
async function signedImage(url: string, repo: string, seed = 'v1') {
  const image = await pushImage(url, repo, 'v1', { format: 'oci', seed });
  const signature = await pushSignature(url, repo, image);
  const sbom = await pushSbom(url, repo, image);
  const sbomSignature = await pushSignature(url, repo, sbom, { seed: 'of the sbom' });
  return { image, signature, sbom, sbomSignature };
}

describe('both sides serve the referrers API', () => {
  it('verify names every missing referrer; sync copies them byte-exact after their subject; verify then agrees', async () => {
    const repo = 'refs/signed';
    const { image, signature, sbom, sbomSignature } = await signedImage(apiPrimary.url, repo);
    await pushImage(apiSecondary.url, repo, 'v1', { format: 'oci', seed: 'v1' });

    const before = await verify(apiPrimary.url, apiSecondary.url, repo);
    expect(before.status).toBe('mismatch');
    expect(before.missing).toEqual([]);
    expect(before.referrers?.missing).toEqual(
      expect.arrayContaining([
        { subject: image.digest, digest: signature.digest, artifactType: Artifact.signature.artifactType },
        { subject: image.digest, digest: sbom.digest, artifactType: Artifact.sbom.artifactType },
        { subject: sbom.digest, digest: sbomSignature.digest, artifactType: Artifact.signature.artifactType },
      ]),
    );
    expect(before.primaryChecksum).not.toBe(before.secondaryChecksum);

    const report = await sync(apiPrimary.url, apiSecondary.url, repo);
    expect(report.status).toBe('synced');
    expect(digests(report.referrers!.done.copied)).toEqual([signature.digest, sbom.digest, sbomSignature.digest].sort());

    expect(digests(await readReferrers(apiSecondary.url, repo, image.digest))).toEqual([signature.digest, sbom.digest].sort());
    expect(digests(await readReferrers(apiSecondary.url, repo, sbom.digest))).toEqual([sbomSignature.digest]);
    for (const referrer of [signature, sbom, sbomSignature]) {
      expect(Buffer.from((await getManifest(apiSecondary.url, repo, referrer.digest))!.bytes)).toEqual(Buffer.from(referrer.bytes));
    }
    const after = await verify(apiPrimary.url, apiSecondary.url, repo);
    expect(after).toMatchObject({ status: 'synced', checksum: 'full', referrers: { missing: [], extra: [], mismatched: [], primaryReferrers: 3 } });
    expect(after.primaryChecksum).toBe(after.secondaryChecksum);
    // The tags alone were equal all along: only the full checksum tells.
    const tagsOnly = await verify(apiPrimary.url, apiSecondary.url, repo, { checksum: 'canonical' });
    expect(tagsOnly.primaryChecksum).toBe(tagsOnly.secondaryChecksum);
  });

  it('a signature the primary never had is named extra, then removed; the image and its tag stay', async () => {
    const repo = 'refs/extra';
    const image = await pushImage(apiPrimary.url, repo, 'v1', { format: 'oci', seed: 'x' });
    await pushImage(apiSecondary.url, repo, 'v1', { format: 'oci', seed: 'x' });
    const forged = await pushSignature(apiSecondary.url, repo, image, { seed: 'forged' });

    const before = await verify(apiPrimary.url, apiSecondary.url, repo);
    expect(before.status).toBe('mismatch');
    expect(before.referrers?.extra).toEqual([{ subject: image.digest, digest: forged.digest, artifactType: Artifact.signature.artifactType }]);

    const report = await sync(apiPrimary.url, apiSecondary.url, repo, { maxPrune: 1 });
    expect(report.status).toBe('synced');
    expect(digests(report.referrers!.done.removed)).toEqual([forged.digest]);
    expect(await readReferrers(apiSecondary.url, repo, image.digest)).toEqual([]);
    expect(await manifestExists(apiSecondary.url, repo, forged.digest)).toBe(false);
    expect(await readTags(apiSecondary.url, repo)).toEqual({ v1: image.digest });
    expect((await verify(apiPrimary.url, apiSecondary.url, repo)).status).toBe('synced');
  });

  it('the prune guard counts referrer removals like tags', async () => {
    const repo = 'refs/guard';
    const image = await pushImage(apiPrimary.url, repo, 'v1', { format: 'oci', seed: 'g' });
    await pushImage(apiSecondary.url, repo, 'v1', { format: 'oci', seed: 'g' });
    const strays = [await pushSignature(apiSecondary.url, repo, image, { seed: 'a' }), await pushSignature(apiSecondary.url, repo, image, { seed: 'b' })];

    const report = await sync(apiPrimary.url, apiSecondary.url, repo);
    expect(report.status).toBe('differences');
    expect(report.guard?.reason).toMatch(/^would remove 2 of 3 tags and referrers on the secondary/);
    expect(digests(await readReferrers(apiSecondary.url, repo, image.digest))).toEqual(digests(strays));
  });

  it('an extra referrer that a tag points at is kept while the tag is there; once the tag is gone it goes too', async () => {
    const repo = 'refs/tagged';
    const image = await pushImage(apiPrimary.url, repo, 'v1', { format: 'oci', seed: 't' });
    await pushImage(apiSecondary.url, repo, 'v1', { format: 'oci', seed: 't' });
    const tagged = await pushSignature(apiSecondary.url, repo, image, { seed: 'tagged' });
    await pushManifest(apiSecondary.url, repo, 'sig', tagged.bytes, tagged.mediaType);

    // The extra tag goes by the tag plan; the referrer it pointed at is left this run, and said so.
    const first = await sync(apiPrimary.url, apiSecondary.url, repo, { maxPrune: 1 });
    expect(first.done.removed).toEqual(['sig']);
    expect(first.status).toBe('differences');
    expect(first.referrers?.done.kept).toEqual([expect.objectContaining({ digest: tagged.digest, reason: 'a tag on the secondary points at it' })]);
    expect(await manifestExists(apiSecondary.url, repo, tagged.digest)).toBe(true);

    const second = await sync(apiPrimary.url, apiSecondary.url, repo, { maxPrune: 1 });
    expect(second.status).toBe('synced');
    expect(digests(second.referrers!.done.removed)).toEqual([tagged.digest]);
    expect(await readTags(apiSecondary.url, repo)).toEqual({ v1: image.digest });
  });

  it("a signature of an index's child is copied with the index", async () => {
    const repo = 'refs/multi';
    const { index, children } = await pushMultiArch(apiPrimary.url, repo, 'multi', 'oci', 'm');
    const childSignature = await pushSignature(apiPrimary.url, repo, children[1]!);

    const report = await sync(apiPrimary.url, apiSecondary.url, repo);
    expect(report.status).toBe('synced');
    expect((await readTags(apiSecondary.url, repo)).multi).toBe(index.digest);
    expect(digests(await readReferrers(apiSecondary.url, repo, children[1]!.digest))).toEqual([childSignature.digest]);
    expect((await verify(apiPrimary.url, apiSecondary.url, repo)).status).toBe('synced');
  });

  it('--no-referrers leaves them out, and verify with it compares the tags alone', async () => {
    const repo = 'refs/off';
    const { image } = await signedImage(apiPrimary.url, repo, 'off');

    const report = await sync(apiPrimary.url, apiSecondary.url, repo, { referrers: false });
    expect(report.referrers).toBeUndefined();
    expect(await readReferrers(apiSecondary.url, repo, image.digest)).toEqual([]);
    expect((await verify(apiPrimary.url, apiSecondary.url, repo, { referrers: false })).status).toBe('synced');
    expect((await verify(apiPrimary.url, apiSecondary.url, repo)).status).toBe('mismatch');
  });

  it('the CLI: verify exits 1 naming the missing signature, sync copies it, verify exits 0', async () => {
    const repo = 'refs/cli';
    const { signature } = await signedImage(apiPrimary.url, repo, 'cli');
    const env = { GEO_SYNC_PRIMARY_URL: apiPrimary.url, GEO_SYNC_SECONDARY_URL: apiSecondary.url };

    const before = await runGeoSync(['verify', repo], env);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain(`missing referrer:    ${signature.digest}`);
    const synced = await runGeoSync(['sync', repo], env);
    expect(synced.code).toBe(0);
    expect(synced.stdout).toMatch(/referrers: copied 3, removed 0/);
    const after = await runGeoSync(['verify', repo, '--json'], env);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ status: 'synced', checksum: 'full', referrers: { primaryReferrers: 3, secondaryReferrers: 3 } });
  });
});

describe('a primary with the API, a secondary without (docker-registry 2.8): the tag schema', () => {
  it('copies the referrers and writes the index tag; the index tag is never extra; a second sync and verify find nothing to do', async () => {
    const repo = 'refs/mixed';
    const { image, signature, sbom, sbomSignature } = await signedImage(apiPrimary.url, repo, 'mixed');

    const report = await sync(apiPrimary.url, plainSecondary.url, repo);
    expect(report.status).toBe('synced');
    expect(report.referrers?.secondary).toBe('tag-schema');
    expect(digests((await readReferrersTagIndex(plainSecondary.url, repo, image.digest))!)).toEqual([signature.digest, sbom.digest].sort());
    expect(digests((await readReferrersTagIndex(plainSecondary.url, repo, sbom.digest))!)).toEqual([sbomSignature.digest]);
    for (const referrer of [signature, sbom, sbomSignature]) expect(await manifestExists(plainSecondary.url, repo, referrer.digest)).toBe(true);
    const tags = await readTags(plainSecondary.url, repo);
    expect(Object.keys(tags).sort()).toEqual([referrersTag(image.digest), referrersTag(sbom.digest), 'v1'].sort());

    const again = await sync(apiPrimary.url, plainSecondary.url, repo);
    expect(again).toMatchObject({ status: 'synced', plan: { copy: [], repair: [], remove: [] }, done: { removed: [] } });
    expect(again.referrers?.plan).toEqual({ copy: [], remove: [], mismatched: [], indexes: [] });
    const verified = await verify(apiPrimary.url, plainSecondary.url, repo);
    expect(verified).toMatchObject({ status: 'synced', secondaryTags: 1, referrers: { secondary: 'tag-schema', missing: [], extra: [] } });
    expect(verified.primaryChecksum).toBe(verified.secondaryChecksum);

    // With referrers turned off, the index tags an earlier run wrote are out of scope, not extra.
    const off = await sync(apiPrimary.url, plainSecondary.url, repo, { referrers: false, maxPrune: 1 });
    expect(off).toMatchObject({ status: 'synced', plan: { remove: [] }, done: { removed: [] } });
    expect(Object.keys(await readTags(plainSecondary.url, repo)).sort()).toEqual(Object.keys(tags).sort());
    expect((await verify(apiPrimary.url, plainSecondary.url, repo, { referrers: false })).status).toBe('synced');
  });

  it('a referrer the primary deleted is dropped from the index tag and deleted from the secondary; the image stays', async () => {
    const repo = 'refs/mixed-delete';
    const { image, signature, sbom } = await signedImage(apiPrimary.url, repo, 'mixed-delete');
    await sync(apiPrimary.url, plainSecondary.url, repo);
    await deleteManifest(apiPrimary.url, repo, signature.digest);

    const report = await sync(apiPrimary.url, plainSecondary.url, repo, { maxPrune: 1 });
    expect(report.status).toBe('synced');
    expect(digests(report.referrers!.done.removed)).toEqual([signature.digest]);
    expect(digests((await readReferrersTagIndex(plainSecondary.url, repo, image.digest))!)).toEqual([sbom.digest]);
    expect(await manifestExists(plainSecondary.url, repo, signature.digest)).toBe(false);
    expect((await readTags(plainSecondary.url, repo)).v1).toBe(image.digest);
  });
});

describe('registries without the API on both sides (docker-registry 2.8)', () => {
  it('tag-schema tags are copied as plain tags, with one referrers request per run on the primary and none on the secondary', async () => {
    const repo = 'refs/plain';
    const image = await pushImage(plainPrimary.url, repo, 'v1', { format: 'oci', seed: 'p' });
    const signature = await pushReferrer(plainPrimary.url, repo, image, Artifact.signature.artifactType);
    const index = await pushReferrersTagIndex(plainPrimary.url, repo, image.digest, [signature.descriptor]);
    const [primaryProxy, secondaryProxy] = (await Promise.all([startFaultProxy(plainPrimary.url), startFaultProxy(plainSecondary.url)])) as [
      FaultProxy,
      FaultProxy,
    ];
    try {
      const report = await sync(primaryProxy.url, secondaryProxy.url, repo);
      expect(report).toMatchObject({ status: 'synced', done: { copied: [referrersTag(image.digest), 'v1'] } });
      expect(report.referrers).toBeUndefined();
      expect((await readTags(plainSecondary.url, repo))[referrersTag(image.digest)]).toBe(index.digest);
      expect(await manifestExists(plainSecondary.url, repo, signature.digest)).toBe(true);

      const before = { primary: primaryProxy.log.length, secondary: secondaryProxy.log.length };
      const noop = await sync(primaryProxy.url, secondaryProxy.url, repo);
      expect(noop.status).toBe('synced');
      const asked = (log: { path: string }[]) => log.filter((r) => r.path.includes('/referrers/')).length;
      expect(asked(primaryProxy.log.slice(before.primary))).toBe(1);
      expect(asked(secondaryProxy.log.slice(before.secondary))).toBe(0);
      expect((await verify(primaryProxy.url, secondaryProxy.url, repo)).status).toBe('synced');
    } finally {
      await Promise.all([primaryProxy.stop(), secondaryProxy.stop()]);
    }
  });
});

describe('the event path: manifests named by digest', () => {
  it('a signature pushed by digest is copied; once deleted on the primary, it is removed from the secondary', async () => {
    const repo = 'refs/events';
    const image = await pushImage(apiPrimary.url, repo, 'v1', { format: 'oci', seed: 'e' });
    await sync(apiPrimary.url, apiSecondary.url, repo);
    const signature = await pushSignature(apiPrimary.url, repo, image, { seed: 'event' });

    const pushed = await withClients(apiPrimary.url, apiSecondary.url, (p, s) => syncTags(p, s, repo, [], { digests: [signature.digest] }));
    expect(pushed).toMatchObject({ status: 'synced', digestsLeft: [] });
    expect(digests(await readReferrers(apiSecondary.url, repo, image.digest))).toEqual([signature.digest]);

    await deleteManifest(apiPrimary.url, repo, signature.digest);
    const deleted = await withClients(apiPrimary.url, apiSecondary.url, (p, s) => syncTags(p, s, repo, [], { digests: [signature.digest] }));
    expect(deleted.status).toBe('synced');
    expect(digests(deleted.referrers!.done.removed)).toEqual([signature.digest]);
    expect(await readReferrers(apiSecondary.url, repo, image.digest)).toEqual([]);
    expect(await readTags(apiSecondary.url, repo)).toEqual({ v1: image.digest });
  });

  it('a pushed tag brings its referrers', async () => {
    const repo = 'refs/events-tag';
    const { image, signature, sbom } = await signedImage(apiPrimary.url, repo, 'events-tag');
    const report = await withClients(apiPrimary.url, apiSecondary.url, (p, s) => syncTags(p, s, repo, ['v1']));
    expect(report).toMatchObject({ status: 'synced', done: { copied: ['v1'] } });
    expect(digests(await readReferrers(apiSecondary.url, repo, image.digest))).toEqual([signature.digest, sbom.digest].sort());
  });
});

describe('geo-sync listen: a signature pushed by digest, as its notification names it', () => {
  it('reaches the secondary through the webhook, the event job and the targeted sync', async () => {
    const repo = 'refs/listen';
    const image = await pushImage(apiPrimary.url, repo, 'v1', { format: 'oci', seed: 'listen' });
    await sync(apiPrimary.url, apiSecondary.url, repo);
    const signature = await pushSignature(apiPrimary.url, repo, image, { seed: 'listen' });
    const stateDir = await mkdtemp(join(tmpdir(), 'geo-sync-referrers-listen-'));
    const port = await freePort();
    const token = 'referrers-listen-token';
    const { child, done } = spawnGeoSync(['listen', '--port', String(port), '--reconcile-every', '0'], {
      GEO_SYNC_PRIMARY_URL: apiPrimary.url,
      GEO_SYNC_SECONDARY_URL: apiSecondary.url,
      GEO_SYNC_WEBHOOK_TOKEN: token,
      GEO_SYNC_STATE_DIR: stateDir,
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await until(async () => (await fetch(`${url}/healthz`)).status === 200);
      // The distribution notification a registry sends for a manifest pushed by digest: no tag.
      const envelope = {
        events: [
          { action: 'push', timestamp: new Date().toISOString(), target: { mediaType: signature.mediaType, repository: repo, digest: signature.digest } },
        ],
      };
      const answer = await fetch(`${url}/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
        body: JSON.stringify(envelope),
      });
      expect(answer.status).toBe(200);
      await until(async () => (await readReferrers(apiSecondary.url, repo, image.digest)).some((r) => r.digest === signature.digest));
      expect(Buffer.from((await getManifest(apiSecondary.url, repo, signature.digest))!.bytes)).toEqual(Buffer.from(signature.bytes));
    } finally {
      child.kill('SIGTERM');
      await done;
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

/** Polls until `check` holds; a timeout fails the test (never an assertion on speed). */
async function until(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
