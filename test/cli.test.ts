import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireRepositoryLock } from '../shared/local/lock.js';
import { runGeoSync } from './support/cli.js';
import { startRegistry, startRegistryPair, type RegistryPair, type TestRegistry } from './support/registry.js';
import { basicAuth, blobExists, pushBlobStream, pushImage, pushManifest, MediaType, readTags } from './support/seed.js';

let registries: RegistryPair;
let env: Record<string, string>;

beforeAll(async () => {
  registries = await startRegistryPair();
  env = { GEO_SYNC_PRIMARY_URL: registries.primary.url, GEO_SYNC_SECONDARY_URL: registries.secondary.url };
});
afterAll(() => registries?.stop());

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

describe('geo-sync CLI', () => {
  it('prints help and exits 0', async () => {
    const result = await runGeoSync(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/sync \[options\] <repository>/);
  });

  it('verify --json names every difference and exits 1; sync repairs; verify then exits 0', async () => {
    const repo = 'cli/app';
    const kept = await pushImage(P(), repo, 'kept');
    const moved = await pushImage(P(), repo, '1.4');
    await pushImage(P(), repo, 'new');
    expect((await pushImage(S(), repo, 'kept')).digest).toBe(kept.digest);
    const impostor = await pushImage(S(), repo, '1.4', { seed: 'impostor' });
    await pushImage(S(), repo, 'stray');

    const before = await runGeoSync(['verify', repo, '--json'], env);
    expect(before.code).toBe(1);
    const report = JSON.parse(before.stdout);
    expect(report).toMatchObject({
      repository: repo,
      status: 'mismatch',
      missing: ['new'],
      extra: ['stray'],
      mismatched: [{ tag: '1.4', primary: moved.digest, secondary: impostor.digest }],
    });
    expect(report.primaryChecksum).toMatch(/^[a-f0-9]{64}$/);
    expect(report.primaryChecksum).not.toBe(report.secondaryChecksum);

    const plan = await runGeoSync(['plan', repo, '--json'], env);
    expect(plan.code).toBe(1);
    expect(JSON.parse(plan.stdout).plan.remove).toEqual([{ tag: 'stray', secondary: expect.any(String) }]);
    expect(Object.keys(await readTags(S(), repo))).toContain('stray');

    const sync = await runGeoSync(['sync', repo, '--json'], env);
    expect(sync.code).toBe(0);
    expect(JSON.parse(sync.stdout).done).toEqual({ copied: ['new'], repaired: ['1.4'], removed: ['stray'] });

    const after = await runGeoSync(['verify', repo], env);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/^cli\/app: synced/);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
  });

  it('takes the registries from flags as well as from the environment', async () => {
    const repo = 'cli/flags';
    await pushImage(P(), repo, 'v1');
    const result = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S()]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/cli\/flags: synced \(copied 1, repaired 0, removed 0/);
  });

  it('computes the GitLab Geo checksum with --checksum gitlab', async () => {
    const repo = 'cli/gitlab';
    const a = await pushImage(P(), repo, 'a');
    const b = await pushImage(P(), repo, 'b');
    const result = await runGeoSync(['verify', repo, '--json', '--checksum', 'gitlab'], env);
    const expected = createHash('sha256').update(`a${a.digest}b${b.digest}`).digest('hex');
    expect(JSON.parse(result.stdout).primaryChecksum).toBe(expected);
  });

  it('--dry-run changes nothing', async () => {
    const repo = 'cli/dry';
    await pushImage(P(), repo, 'v1');
    await pushImage(S(), repo, 'stray');
    const result = await runGeoSync(['sync', repo, '--dry-run'], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/1 to copy, 0 to repair, 1 to remove/);
    expect(Object.keys(await readTags(S(), repo))).toEqual(['stray']);
  });

  it('exits 1 and explains when the prune guard holds', async () => {
    const repo = 'cli/guard';
    await pushImage(P(), repo, 'only');
    for (const tag of ['only', 'x1', 'x2']) await pushImage(S(), repo, tag);
    const result = await runGeoSync(['sync', repo], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/guard: would remove 2 of 3 tags/);
    expect(Object.keys(await readTags(S(), repo)).sort()).toEqual(['only', 'x1', 'x2']);
    expect((await runGeoSync(['sync', repo, '--max-prune', '1'], env)).code).toBe(0);
    expect(Object.keys(await readTags(S(), repo))).toEqual(['only']);
  });

  it.each([
    [['sync', 'Not/Valid'], /invalid repository name "Not\/Valid": path component "Not"/],
    [['sync', 'a', '--max-prune', '2'], /--max-prune must be a number from 0 to 1/],
    [['verify', 'a', '--checksum', 'md5'], /md5/],
    [['sync', 'a', '--no-such-flag'], /unknown option/],
    [['sync'], /missing required argument/],
  ])('usage error %j exits 2 naming the problem', async (args, message) => {
    const result = await runGeoSync(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('exits 2 when no primary is configured', async () => {
    const result = await runGeoSync(['sync', 'a'], { GEO_SYNC_SECONDARY_URL: S() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no primary registry: pass --primary <url> or set GEO_SYNC_PRIMARY_URL/);
  });

  it('exits 3 and removes nothing when the repository is missing on the primary', async () => {
    const repo = 'cli/orphan';
    await pushImage(S(), repo, 'keep-me');
    const result = await runGeoSync(['sync', repo, '--max-prune', '1', '--json'], env);
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout).error.code).toBe('REPOSITORY_NOT_FOUND');
    expect(Object.keys(await readTags(S(), repo))).toEqual(['keep-me']);
  });

  it('exits 3 when the primary is unreachable', async () => {
    const result = await runGeoSync(['sync', 'cli/app', '--primary', 'http://127.0.0.1:9', '--retries', '0'], env);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/127\.0\.0\.1:9.*failed/);
  });
});

describe('geo-sync against registries with basic authentication', () => {
  const secret = 'pr1mary-S3cret-value';
  let primary: TestRegistry;
  let secondary: TestRegistry;
  beforeAll(async () => {
    [primary, secondary] = await Promise.all([
      startRegistry({ htpasswd: { username: 'reader', password: secret } }),
      startRegistry({ htpasswd: { username: 'writer', password: 'sec0ndary-S3cret' } }),
    ]);
  });
  afterAll(() => Promise.all([primary?.stop(), secondary?.stop()]));

  const authEnv = () => ({
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_SECONDARY_URL: secondary.url,
    GEO_SYNC_PRIMARY_USERNAME: 'reader',
    GEO_SYNC_PRIMARY_PASSWORD: secret,
    GEO_SYNC_SECONDARY_USERNAME: 'writer',
    GEO_SYNC_SECONDARY_PASSWORD: 'sec0ndary-S3cret',
    GEO_SYNC_LOG_LEVEL: 'debug',
  });

  it('syncs with credentials from the environment and never prints them', async () => {
    const repo = 'auth/app';
    await pushImage(primary.url, repo, 'v1', { auth: basicAuth('reader', secret) });
    const result = await runGeoSync(['sync', repo, '--json'], authEnv());
    expect(result.code).toBe(0);
    expect(await readTags(secondary.url, repo, basicAuth('writer', 'sec0ndary-S3cret'))).toEqual(
      await readTags(primary.url, repo, basicAuth('reader', secret)),
    );
    for (const text of [result.stdout, result.stderr]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(Buffer.from(`reader:${secret}`).toString('base64'));
    }
  });

  it('exits 3 with a clear message on wrong credentials, changing nothing', async () => {
    const repo = 'auth/wrong';
    await pushImage(secondary.url, repo, 'keep', { auth: basicAuth('writer', 'sec0ndary-S3cret') });
    const result = await runGeoSync(['sync', repo, '--max-prune', '1'], { ...authEnv(), GEO_SYNC_PRIMARY_PASSWORD: 'wrong-password' });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/authentication refused/);
    expect(result.stderr).not.toContain('wrong-password');
    expect(Object.keys(await readTags(secondary.url, repo, basicAuth('writer', 'sec0ndary-S3cret')))).toEqual(['keep']);
  });
});

describe('several secondaries (GEO_SYNC_SECONDARIES)', () => {
  // eu: the shared pair's secondary, anonymous; us: a third registry whose entry carries its credentials.
  const usPassword = 'us-Wr1ter-secret';
  let us: TestRegistry;
  beforeAll(async () => {
    us = await startRegistry({ htpasswd: { username: 'us-writer', password: usPassword } });
  });
  afterAll(() => us?.stop());

  const usAuth = () => basicAuth('us-writer', usPassword);
  const secondaries = (extra: object[] = []) => [{ name: 'eu', url: S() }, { name: 'us', url: us.url, username: 'us-writer', password: usPassword }, ...extra];
  const multiEnv = (list = secondaries()) => ({ GEO_SYNC_PRIMARY_URL: P(), GEO_SYNC_SECONDARIES: JSON.stringify(list) });

  it('verify, plan and sync act on every secondary, one entry or block each, never only the first', async () => {
    const repo = 'multi/all';
    for (const tag of ['v1', 'v2']) await pushImage(P(), repo, tag);
    await pushImage(S(), repo, 'v1');
    for (const tag of ['v1', 'v2', 'stray']) await pushImage(us.url, repo, tag, { auth: usAuth() });

    const verify = await runGeoSync(['verify', repo, '--json'], multiEnv());
    expect(verify.code).toBe(1);
    expect(JSON.parse(verify.stdout)).toMatchObject({
      repository: repo,
      secondaries: [
        { secondary: 'eu', status: 'mismatch', missing: ['v2'], extra: [] },
        { secondary: 'us', status: 'mismatch', missing: [], extra: ['stray'] },
      ],
    });

    const plan = await runGeoSync(['plan', repo], multiEnv());
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/^\[eu\] multi\/all: 1 to copy, 0 to repair, 0 to remove/m);
    expect(plan.stdout).toMatch(/^\[us\] multi\/all: 0 to copy, 0 to repair, 1 to remove/m);
    expect(plan.stdout).toMatch(/^\[us\] {3}remove {2}stray/m);

    const sync = await runGeoSync(['sync', repo, '--json'], multiEnv());
    expect(sync.code).toBe(0);
    const synced = JSON.parse(sync.stdout);
    expect(synced.secondaries.map((s: { secondary: string; status: string; done: object }) => [s.secondary, s.status, s.done])).toEqual([
      ['eu', 'synced', { copied: ['v2'], repaired: [], removed: [] }],
      ['us', 'synced', { copied: [], repaired: [], removed: ['stray'] }],
    ]);
    const primaryTags = await readTags(P(), repo);
    expect(await readTags(S(), repo)).toEqual(primaryTags);
    expect(await readTags(us.url, repo, usAuth())).toEqual(primaryTags);

    const after = await runGeoSync(['verify', repo], multiEnv());
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/^\[eu\] multi\/all: synced$/m);
    expect(after.stdout).toMatch(/^\[us\] multi\/all: synced$/m);
  });

  it("--secondary NAME acts on that secondary only, with its entry's URL and credentials, and prints the one-secondary report", async () => {
    const repo = 'multi/one';
    await pushImage(P(), repo, 'v1');
    await pushImage(S(), repo, 'eu-only');

    const result = await runGeoSync(['sync', repo, '--secondary', 'us', '--json'], multiEnv());
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ repository: repo, status: 'synced', done: { copied: ['v1'], repaired: [], removed: [] } });
    expect(report.secondaries).toBeUndefined();
    expect(await readTags(us.url, repo, usAuth())).toEqual(await readTags(P(), repo));
    expect(Object.keys(await readTags(S(), repo))).toEqual(['eu-only']);

    const verifyEu = await runGeoSync(['verify', repo, '--secondary', 'eu', '--json'], multiEnv());
    expect(verifyEu.code).toBe(1);
    expect(JSON.parse(verifyEu.stdout)).toMatchObject({ missing: ['v1'], extra: ['eu-only'] });
  });

  it('prefers a configured name to a host name of the same spelling', async () => {
    const repo = 'multi/dotted';
    await pushImage(P(), repo, 'v1');
    const list = [
      { name: 'registry.example.com', url: S() },
      { name: 'us', url: us.url, username: 'us-writer', password: usPassword },
    ];
    const result = await runGeoSync(['sync', repo, '--secondary', 'registry.example.com'], multiEnv(list));
    expect(result.code).toBe(0);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    expect(await readTags(us.url, repo, usAuth())).toEqual({});
  });

  it('exits 2 naming the known secondaries when --secondary names none of them, changing nothing', async () => {
    const repo = 'multi/unknown';
    await pushImage(P(), repo, 'v1');
    const result = await runGeoSync(['sync', repo, '--secondary', 'mars'], multiEnv());
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown secondary "mars": GEO_SYNC_SECONDARIES names eu, us/);
    expect(await readTags(S(), repo)).toEqual({});
    expect(await readTags(us.url, repo, usAuth())).toEqual({});
  });

  it('goes on to the next secondary when one fails, names the failure, and exits with the worst code', async () => {
    const repo = 'multi/down';
    await pushImage(P(), repo, 'v1');
    const result = await runGeoSync(['sync', repo, '--json', '--retries', '0'], multiEnv([{ name: 'down', url: 'http://127.0.0.1:9' }, ...secondaries()]));
    expect(result.code).toBe(3);
    const report = JSON.parse(result.stdout);
    expect(report.secondaries.map((s: { secondary: string }) => s.secondary)).toEqual(['down', 'eu', 'us']);
    expect(report.secondaries[0]).toEqual({ secondary: 'down', error: { code: 'REGISTRY_UNREACHABLE', message: expect.stringMatching(/127\.0\.0\.1:9/) } });
    expect(report.secondaries.slice(1).map((s: { status: string }) => s.status)).toEqual(['synced', 'synced']);
    expect(result.stderr).toMatch(/geo-sync: \[down\] .*127\.0\.0\.1:9/);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    expect(await readTags(us.url, repo, usAuth())).toEqual(await readTags(P(), repo));
  });

  it('takes the repository lock per secondary: one held elsewhere declines that secondary only (exit 1)', async () => {
    const repo = 'multi/locked';
    await pushImage(P(), repo, 'v1');
    const stateDir = mkdtempSync(join(tmpdir(), 'geo-sync-state-'));
    const release = acquireRepositoryLock(us.host, repo, join(stateDir, 'locks'));
    try {
      const result = await runGeoSync(['sync', repo], { ...multiEnv(), GEO_SYNC_STATE_DIR: stateDir });
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/^\[eu\] multi\/locked: synced/m);
      expect(result.stdout).toMatch(/^\[us\] multi\/locked: error SYNC_IN_PROGRESS: another geo-sync/m);
    } finally {
      release();
      rmSync(stateDir, { recursive: true, force: true });
    }
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    expect(await readTags(us.url, repo, usAuth())).toEqual({});
  });
});

describe('large layers', () => {
  it('copies a 300 MB layer streamed, with bounded memory, and verifies it', async () => {
    const repo = 'big/layer';
    const size = 300 * 1024 * 1024;
    const layer = await pushBlobStream(P(), repo, size, 'large-layer');
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const configDigest = await (await import('./support/seed.js')).pushBlob(P(), repo, config);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size }],
    });
    await pushManifest(P(), repo, 'huge', manifest, MediaType.ociManifest);

    const result = await runGeoSync(['sync', repo, '--json'], env, { measureRss: true });

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).bytesCopied).toBe(size + config.length);
    expect(await blobExists(S(), repo, layer)).toBe(true);
    expect(result.peakRss).toBeGreaterThan(0);
    console.log(`peak RSS copying ${size / 1048576} MiB: ${(result.peakRss! / 1048576).toFixed(0)} MiB`);
    // Buffering the layer whole would need more than 300 MB.
    expect(result.peakRss!).toBeLessThan(200 * 1024 * 1024);
  });
});
