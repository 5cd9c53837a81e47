// Scopes and prefixes per secondary, against real docker-registry processes: what lies outside a
// scope survives byte for byte, copies under a prefix mount their shared blobs there, a scope
// changed between runs removes nothing that fell out of it, verify's checksum says which scope it
// is over, and a bad configuration is an error naming the entry and the field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RegistryClient,
  compileScope,
  endpointsFromEnv,
  syncRepository,
  validateRepositoryName,
  verifyRepository,
  type ScopeConfig,
} from '../shared/engine/index.js';
import { runGeoSync } from './support/cli.js';
import { REFERRERS_REGISTRY_START_TIMEOUT_MS, startReferrersRegistryPair, type ReferrersRegistryPair } from './support/referrers-registry.js';
import { pushSignature, readReferrers } from './support/referrers.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { getManifest, pushImage, readTags } from './support/seed.js';

let pair: RegistryPair;
let dir: string;
const P = () => pair.primary.url;
const S = () => pair.secondary.url;
const RELEASES: ScopeConfig = { tags: { include: ['^v\\d+\\.\\d+\\.\\d+$', '^latest$'] } };

/** A sync of one repository the way a job runs it: the secondary's client under the scope's prefix, the tag scope passed in. */
async function syncUnder(config: ScopeConfig, name: string, clients?: { primary: RegistryClient; secondary: RegistryClient }) {
  const scope = compileScope(config, 'test');
  const primary = clients?.primary ?? new RegistryClient({ url: P() });
  const secondary = clients?.secondary ?? new RegistryClient({ url: S() }, { prefix: scope.prefix });
  try {
    return await syncRepository(primary, secondary, validateRepositoryName(name), { tags: scope.tags });
  } finally {
    if (!clients) await Promise.all([primary.close(), secondary.close()]);
  }
}

async function verifyUnder(config: ScopeConfig, name: string) {
  const scope = compileScope(config, 'test');
  const primary = new RegistryClient({ url: P() });
  const secondary = new RegistryClient({ url: S() }, { prefix: scope.prefix });
  try {
    return await verifyRepository(primary, secondary, validateRepositoryName(name), { tags: scope.tags });
  } finally {
    await Promise.all([primary.close(), secondary.close()]);
  }
}

/** The exact bytes of every tag's manifest, to show a tag untouched byte for byte. */
async function manifestBytes(url: string, repository: string, tags: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const tag of tags) out[tag] = Buffer.from((await getManifest(url, repository, tag))!.bytes).toString('base64');
  return out;
}

async function catalog(url: string): Promise<string[]> {
  return ((await (await fetch(`${url}/v2/_catalog?n=1000`)).json()) as { repositories: string[] }).repositories;
}

beforeAll(async () => {
  pair = await startRegistryPair();
  dir = mkdtempSync(join(tmpdir(), 'scopes-'));
});

afterAll(async () => {
  await pair?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a tag scope', () => {
  it("keeps the release tags exact while the secondary's own out-of-scope tags survive, byte for byte", async () => {
    for (const tag of ['v1.0.0', 'v1.1.0', 'latest', 'pr-12', 'sha-0a1b2c']) await pushImage(P(), 'release/app', tag);
    // The secondary's own: out of scope (kept), and one in-scope tag the primary does not have (removed).
    for (const tag of ['pr-99', 'nightly']) await pushImage(S(), 'release/app', tag, { seed: 'secondary-own' });
    await pushImage(S(), 'release/app', 'v0.9.0', { seed: 'old release' });
    const own = await manifestBytes(S(), 'release/app', ['pr-99', 'nightly']);

    const report = await syncUnder(RELEASES, 'release/app');

    expect(report.status).toBe('synced');
    expect(report.done.copied.sort()).toEqual(['latest', 'v1.0.0', 'v1.1.0']);
    expect(report.done.removed).toEqual(['v0.9.0']);
    const primary = await readTags(P(), 'release/app');
    const secondary = await readTags(S(), 'release/app');
    expect(Object.keys(secondary).sort()).toEqual(['latest', 'nightly', 'pr-99', 'v1.0.0', 'v1.1.0']);
    for (const tag of ['latest', 'v1.0.0', 'v1.1.0']) expect(secondary[tag]).toBe(primary[tag]);
    expect(await manifestBytes(S(), 'release/app', ['pr-99', 'nightly'])).toEqual(own);

    // A second run has nothing to do: the out-of-scope tags on either side are not differences.
    const again = await syncUnder(RELEASES, 'release/app');
    expect(again.plan).toMatchObject({ copy: [], repair: [], remove: [] });
    expect((await verifyUnder(RELEASES, 'release/app')).status).toBe('synced');
  });

  it('measures the prune guard over the in-scope tags alone', async () => {
    await pushImage(P(), 'guarded/app', 'v1.0.0');
    for (let i = 0; i < 8; i++) await pushImage(S(), 'guarded/app', `scratch-${i}`);
    for (const tag of ['v1.0.0', 'v2.0.0', 'v3.0.0']) await pushImage(S(), 'guarded/app', tag, { seed: 'stale' });

    // Two of the three in-scope tags would go: past the 0.5 limit, though 2 of all 11 is not.
    const report = await syncUnder(RELEASES, 'guarded/app');
    expect(report.guard?.reason).toMatch(/2 of/);
    expect(report.done.removed).toEqual([]);
    expect(Object.keys(await readTags(S(), 'guarded/app'))).toHaveLength(11);
  });

  it('never removes what fell out of a scope changed between two runs', async () => {
    for (const tag of ['v1.0.0', 'pr-1', 'pr-2']) await pushImage(P(), 'changing/app', tag);
    await syncUnder({}, 'changing/app');
    expect(Object.keys(await readTags(S(), 'changing/app')).sort()).toEqual(['pr-1', 'pr-2', 'v1.0.0']);

    // The primary drops its pr- tags, and the operator narrows the scope to releases in the same breath.
    const onPrimary = await readTags(P(), 'changing/app');
    for (const tag of ['pr-1', 'pr-2']) {
      const res = await fetch(`${P()}/v2/changing/app/manifests/${onPrimary[tag]}`, { method: 'DELETE' });
      expect(res.status).toBe(202);
    }
    await pushImage(P(), 'changing/app', 'v1.1.0');
    const before = await manifestBytes(S(), 'changing/app', ['pr-1', 'pr-2']);
    const report = await syncUnder(RELEASES, 'changing/app');

    expect(report.done).toEqual({ copied: ['v1.1.0'], repaired: [], removed: [] });
    expect(await manifestBytes(S(), 'changing/app', ['pr-1', 'pr-2'])).toEqual(before);
  });
});

describe('a prefix on the secondary', () => {
  it('places the copies under it, mounts shared blobs between the mapped names, and touches nothing outside', async () => {
    const base = new TextEncoder().encode('a base layer both images share');
    await pushImage(P(), 'prod/a', 'v1.0.0', { sharedLayer: base });
    await pushImage(P(), 'prod/b', 'v1.0.0', { sharedLayer: base });
    // Unrelated content on the secondary, at the primary's own names: never read, never written.
    await pushImage(S(), 'prod/a', 'theirs', { seed: 'not ours' });
    const theirs = await manifestBytes(S(), 'prod/a', ['theirs']);

    const config: ScopeConfig = { prefix: 'dr/' };
    const primary = new RegistryClient({ url: P() });
    const secondary = new RegistryClient({ url: S() }, { prefix: 'dr/' });
    try {
      const first = await syncUnder(config, 'prod/a', { primary, secondary });
      const second = await syncUnder(config, 'prod/b', { primary, secondary });
      expect(first.secondaryRepository).toBe('dr/prod/a');
      expect(second.blobsMounted).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all([primary.close(), secondary.close()]);
    }

    for (const name of ['prod/a', 'prod/b']) expect(await readTags(S(), `dr/${name}`)).toEqual(await readTags(P(), name));
    expect(await readTags(S(), 'prod/a')).toEqual({ theirs: expect.any(String) });
    expect(await manifestBytes(S(), 'prod/a', ['theirs'])).toEqual(theirs);
    expect((await catalog(S())).filter((name) => name.startsWith('dr/')).sort()).toEqual(['dr/prod/a', 'dr/prod/b']);
    expect((await verifyUnder(config, 'prod/a')).secondaryRepository).toBe('dr/prod/a');
  });
});

describe("referrers under a scope (go-containerregistry's registry, the API on both sides)", () => {
  let api: ReferrersRegistryPair;
  beforeAll(async () => {
    api = await startReferrersRegistryPair();
  }, REFERRERS_REGISTRY_START_TIMEOUT_MS);
  afterAll(() => api?.stop());

  it("follow their subject's scope, under the prefix, and the secondary's own survive", async () => {
    const kept = await pushImage(api.primary.url, 'signed/app', 'v1.0.0');
    const dropped = await pushImage(api.primary.url, 'signed/app', 'pr-1');
    const signature = await pushSignature(api.primary.url, 'signed/app', kept);
    await pushSignature(api.primary.url, 'signed/app', dropped);
    // The secondary's own tag and its signature, under the prefix but outside the tag scope.
    const own = await pushImage(api.secondary.url, 'dr/signed/app', 'scratch', { seed: 'own' });
    const ownSignature = await pushSignature(api.secondary.url, 'dr/signed/app', own);

    const primary = new RegistryClient({ url: api.primary.url });
    const secondary = new RegistryClient({ url: api.secondary.url }, { prefix: 'dr/' });
    try {
      const scope = compileScope({ ...RELEASES, prefix: 'dr/' }, 'test');
      const report = await syncRepository(primary, secondary, validateRepositoryName('signed/app'), { tags: scope.tags });
      expect(report.referrers?.done.copied.map((edge) => edge.digest)).toEqual([signature.digest]);
      const verified = await verifyRepository(primary, secondary, validateRepositoryName('signed/app'), { tags: scope.tags });
      expect(verified.status).toBe('synced');
      expect(verified.referrers).toMatchObject({ primaryReferrers: 1, secondaryReferrers: 1 });
    } finally {
      await Promise.all([primary.close(), secondary.close()]);
    }
    expect(Object.keys(await readTags(api.secondary.url, 'dr/signed/app')).sort()).toEqual(['scratch', 'v1.0.0']);
    expect((await readReferrers(api.secondary.url, 'dr/signed/app', kept.digest)).map((r) => r.digest)).toEqual([signature.digest]);
    expect((await readReferrers(api.secondary.url, 'dr/signed/app', own.digest)).map((r) => r.digest)).toEqual([ownSignature.digest]);
    expect(await readTags(api.secondary.url, 'signed/app')).toEqual({});
  });
});

describe("verify's checksum", () => {
  it('names the scope it is over, and differs by scope', async () => {
    const all = await verifyUnder({}, 'release/app');
    const releases = await verifyUnder(RELEASES, 'release/app');
    const latestOnly = await verifyUnder({ tags: { include: ['^latest$'] } }, 'release/app');

    expect(all.scope.tags).toBe('every tag');
    expect(releases.scope.tags).toBe('tags include "^v\\\\d+\\\\.\\\\d+\\\\.\\\\d+$" "^latest$"');
    expect(releases.scope.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set([all.scope.hash, releases.scope.hash, latestOnly.scope.hash]).size).toBe(3);
    // Under the release scope both sides agree; over every tag they do not (the secondary's own tags).
    expect(releases.status).toBe('synced');
    expect(releases.primaryChecksum).toBe(releases.secondaryChecksum);
    expect(all.status).toBe('mismatch');
    expect(all.extra.sort()).toEqual(['nightly', 'pr-99']);
    expect(releases.primaryTags).toBe(3);
    expect(new Set([all.primaryChecksum, releases.primaryChecksum, latestOnly.primaryChecksum]).size).toBe(3);
  });
});

describe('the configuration', () => {
  const env = (secondaries: unknown) => ({ GEO_SYNC_PRIMARY_URL: 'https://p.example.com', GEO_SYNC_SECONDARIES: JSON.stringify(secondaries) });
  const entry = { name: 'dr', url: 'https://dr.example.com' };

  it.each([
    [{ ...entry, tagz: {} }, /GEO_SYNC_SECONDARIES\[0\] \(dr\): unknown field "tagz"/],
    [{ ...entry, tags: { include: ['^v(\\d+$'] } }, /GEO_SYNC_SECONDARIES\[0\] \(dr\): tags\.include\[0\] is not a valid regular expression/],
    [{ ...entry, tags: { include: [] } }, /tags\.include is empty: leave it out to keep everything/],
    [{ ...entry, tags: { only: ['x'] } }, /unknown field "only" in tags/],
    [{ ...entry, tags: { include: '^v' } }, /tags\.include must be a array, not string|tags\.include/],
    [{ ...entry, repositories: { include: ['prod/[ab]'] } }, /repositories\.include\[0\] "prod\/\[ab\]": a repository glob holds/],
    [{ ...entry, prefix: 'dr' }, /prefix "dr" must end with "\/"/],
    [{ ...entry, prefix: 'DR/' }, /prefix "DR\/" is not a repository path/],
    [{ url: 'https://x' }, /GEO_SYNC_SECONDARIES\[0\]: "name" is required/],
  ])('refuses %j with an error naming the entry and the field', (secondary, message) => {
    expect(() => endpointsFromEnv(env([secondary]))).toThrow(message);
  });

  it('matches globs by path segment: * within one, ** across any', () => {
    const scope = compileScope({ repositories: { include: ['prod/**', 'team-*/app'], exclude: ['prod/tmp/**'] } }, 'test');
    const kept = ['prod/app', 'prod/a/b/c', 'team-x/app', 'prod/tmp'].filter((name) => scope.hasRepository(name));
    expect(kept).toEqual(['prod/app', 'prod/a/b/c', 'team-x/app', 'prod/tmp']);
    expect(['prod', 'team-x/y/app', 'prod/tmp/a', 'staging/app'].filter((name) => scope.hasRepository(name))).toEqual([]);
    expect(compileScope({ repositories: { include: ['**/app'] } }, 'test').hasRepository('app')).toBe(true);
  });

  it('reads the same list from a YAML file (--config), and refuses two lists at once', async () => {
    const file = join(dir, 'secondaries.yaml');
    writeFileSync(file, ['- name: dr', '  url: https://dr.example.com', '  prefix: dr/', '  tags:', '    include: ["^v"]', ''].join('\n'));
    const [site] = endpointsFromEnv({ GEO_SYNC_PRIMARY_URL: 'https://p.example.com' }, { config: file }).secondaries;
    expect(site!.scope.prefix).toBe('dr/');
    expect(site!.scope.tags.has('v1')).toBe(true);
    expect(site!.scope.tags.has('pr-1')).toBe(false);
    expect(() => endpointsFromEnv(env([entry]), { config: file })).toThrow(/both GEO_SYNC_SECONDARIES and the config file .* list secondaries: keep one/);
    writeFileSync(file, '- name: dr\n  url: https://dr.example.com\n  url: https://again.example.com\n');
    expect(() => endpointsFromEnv({ GEO_SYNC_PRIMARY_URL: 'https://p.example.com' }, { config: file })).toThrow(/neither YAML nor JSON/);
  });
});

describe('the CLI under a scope', () => {
  const config = () => {
    const file = join(dir, 'cli.yaml');
    const lines = ['- name: dr', `  url: ${S()}`, '  prefix: dr/', '  repositories:', '    include: ["cli/**"]', '  tags:', '    include: ["^v"]', ''];
    writeFileSync(file, lines.join('\n'));
    return file;
  };

  it('syncs and verifies in scope, names both repositories, and refuses a repository outside it', async () => {
    await pushImage(P(), 'cli/app', 'v1');
    await pushImage(P(), 'cli/app', 'pr-7');
    const base = ['--primary', P(), '--config', config()];

    const sync = await runGeoSync(['sync', 'cli/app', ...base]);
    expect(sync.stdout).toMatch(/^cli\/app -> dr\/cli\/app: synced \(copied 1,/);
    expect(sync.code).toBe(0);
    expect(Object.keys(await readTags(S(), 'dr/cli/app'))).toEqual(['v1']);

    const verify = await runGeoSync(['verify', 'cli/app', '--json', ...base]);
    expect(verify.code).toBe(0);
    const report = JSON.parse(verify.stdout) as { status: string; scope: { tags: string; hash: string }; secondaryRepository: string };
    expect(report).toMatchObject({ status: 'synced', secondaryRepository: 'dr/cli/app', scope: { tags: 'tags include "^v"' } });

    const outside = await runGeoSync(['sync', 'release/app', ...base]);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(
      /release\/app is outside the scope of the secondary dr \(repositories include "cli\/\*\*"; tags include "\^v"; under dr\/\): nothing was done/,
    );
    expect(await readTags(S(), 'dr/release/app')).toEqual({});
  });

  it('run sends work only for the repositories a scope keeps', async () => {
    await pushImage(P(), 'cli/tool', 'v2');
    const run = await runGeoSync(['run', '--primary', P(), '--config', config(), '--state-dir', join(dir, 'state-run'), '--json']);
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout) as { records: { repository: string; secondary: string }[] };
    expect(summary.records.map((r) => r.repository).sort()).toEqual(['cli/app', 'cli/tool']);
    expect((await catalog(S())).filter((name) => name.startsWith('dr/')).sort()).toEqual(['dr/cli/app', 'dr/cli/tool', 'dr/prod/a', 'dr/prod/b']);
    const status = await runGeoSync(['status', '--state-dir', join(dir, 'state-run')]);
    expect(status.stdout).toMatch(/^cli\/app -> dr\/cli\/app +dr +synced/m);
  });

  it('run says so when a scope keeps none of the primary repositories, and syncs nothing there', async () => {
    const file = join(dir, 'none.yaml');
    writeFileSync(file, `- name: dr\n  url: ${S()}\n  prefix: none/\n  repositories:\n    include: ["nothing-here/**"]\n`);
    const run = await runGeoSync(['run', '--primary', P(), '--config', file, '--state-dir', join(dir, 'state-none')]);
    expect(run.stdout).toMatch(
      /the scope of dr keeps none of the primary's repositories \(repositories include "nothing-here\/\*\*"; every tag; under none\/\)/,
    );
    expect((await catalog(S())).filter((name) => name.startsWith('none/'))).toEqual([]);
  });
});
