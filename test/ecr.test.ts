// ECR end to end, against the ECR stand-in (test/support/ecr-stand-in.ts: ECR's API and its
// registry API's rules in front of a real registry) and a real docker-registry: ECR as the
// secondary and as the primary, through the engine and through the real CLI.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  endpointsFromEnv,
  openRegistry,
  syncRepository,
  validateRepositoryName,
  verifyRepository,
  type OpenOptions,
  type Registry,
} from '../shared/engine/index.js';
import { runGeoSync } from './support/cli.js';
import { startEcrStandIn, type EcrStandIn } from './support/ecr-stand-in.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { MediaType, deleteManifest, getManifest, pushImage, pushManifest, pushMultiArch, readTags, type PushedManifest } from './support/seed.js';
import { pushSignature, readReferrers, readReferrersTagIndex } from './support/referrers.js';
import { REFERRERS_REGISTRY_START_TIMEOUT_MS, startReferrersRegistry, type ReferrersRegistry } from './support/referrers-registry.js';

let ecr: EcrStandIn;
let plain: TestRegistry;
let stateDir: string;

/** The SDK's own variables: the ECR API at the stand-in, dummy credentials, no instance metadata. */
const awsEnv = (): Record<string, string> => ({
  AWS_ENDPOINT_URL_ECR: ecr.apiUrl,
  AWS_REGION: ecr.region,
  AWS_ACCESS_KEY_ID: 'AKIDSTANDIN',
  AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
});
const ecrAs = (role: 'PRIMARY' | 'SECONDARY') => ({
  [`GEO_SYNC_${role}_URL`]: ecr.registryUrl,
  [`GEO_SYNC_${role}_TYPE`]: 'ecr',
  [`GEO_SYNC_${role}_REGION`]: ecr.region,
});

beforeAll(async () => {
  [ecr, plain] = await Promise.all([startEcrStandIn(), startRegistry()]);
  Object.assign(process.env, awsEnv());
  stateDir = mkdtempSync(join(tmpdir(), 'geo-sync-ecr-state-'));
}, 60_000);
afterAll(async () => {
  await Promise.all([ecr?.stop(), plain?.stop()]);
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** The pair as the configuration opens it: ECR by declaration (a loopback host is no ECR host). */
function open(ecrRole: 'primary' | 'secondary', options: OpenOptions = {}): { primary: Registry; secondary: Registry; close: () => Promise<unknown> } {
  const env = ecrRole === 'secondary' ? { GEO_SYNC_PRIMARY_URL: plain.url, ...ecrAs('SECONDARY') } : { ...ecrAs('PRIMARY'), GEO_SYNC_SECONDARY_URL: plain.url };
  const endpoints = endpointsFromEnv(env);
  const primary = openRegistry(endpoints.primary, ecrRole === 'primary' ? options : {});
  const secondary = openRegistry(endpoints.secondaries[0]!.endpoint, ecrRole === 'secondary' ? options : {});
  return { primary, secondary, close: () => Promise.all([primary.close(), secondary.close()]) };
}

const calls = (operation: string, from = 0) => ecr.apiCalls.slice(from).filter((call) => call.operation === operation);
const B = () => ecr.backingRegistryUrl;

describe('ECR as the secondary of a docker-registry', () => {
  it('creates the repository on first push with the default settings, copies every tag, and a no-op run HEADs no tag', async () => {
    const repo = 'ecr-secondary/app';
    const v1 = await pushImage(plain.url, repo, 'v1');
    await pushManifest(plain.url, repo, 'latest', v1.bytes, v1.mediaType);
    await pushImage(plain.url, repo, 'v2', { format: 'docker' });
    const pair = open('secondary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();

    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    expect(report.done.copied).toEqual(['latest', 'v1', 'v2']);
    expect(calls('CreateRepository').map((call) => call.input.repositoryName)).toEqual([repo]);
    expect(ecr.repository(repo)).toMatchObject({
      imageTagMutability: 'MUTABLE',
      encryptionConfiguration: { encryptionType: 'AES256' },
      imageScanningConfiguration: { scanOnPush: false },
    });
    expect(await readTags(B(), repo)).toEqual(await readTags(plain.url, repo));
    expect(Buffer.from((await getManifest(B(), repo, 'v2'))!.bytes)).toEqual(Buffer.from((await getManifest(plain.url, repo, 'v2'))!.bytes));

    const requestsBefore = ecr.registryRequests.length;
    const apiBefore = ecr.apiCalls.length;
    const again = open('secondary');
    const noop = await syncRepository(again.primary, again.secondary, validateRepositoryName(repo));
    await again.close();
    expect(noop.status).toBe('synced');
    const requests = ecr.registryRequests.slice(requestsBefore);
    // What a no-op run costs the ECR side: its tags come from ListImages, never a HEAD per tag.
    console.info(
      `no-op sync, ECR secondary, 3 tags: ${requests.length} registry requests (${requests.map((r) => `${r.method} ${r.path}`).join(', ')}); ECR API: ${ecr.apiCalls
        .slice(apiBefore)
        .map((c) => c.operation)
        .join(', ')}`,
    );
    expect(requests.filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/'))).toEqual([]);
    expect(calls('ListImages', apiBefore)).toHaveLength(1);
    expect(calls('CreateRepository', apiBefore)).toEqual([]);
  });

  it('removes an extra tag with BatchDeleteImage by tag while an alias on the same image stays; no DELETE, no throwaway manifest', async () => {
    const repo = 'ecr-secondary/alias';
    const image = await pushImage(plain.url, repo, 'keep');
    const first = open('secondary');
    expect((await syncRepository(first.primary, first.secondary, validateRepositoryName(repo))).status).toBe('synced');
    await first.close();
    await pushManifest(B(), repo, 'stray', image.bytes, image.mediaType);
    expect(Object.keys(await readTags(B(), repo)).sort()).toEqual(['keep', 'stray']);

    const requestsBefore = ecr.registryRequests.length;
    const apiBefore = ecr.apiCalls.length;
    const pair = open('secondary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();

    expect(report.done.removed).toEqual(['stray']);
    expect(await readTags(B(), repo)).toEqual({ keep: image.digest });
    expect(calls('BatchDeleteImage', apiBefore).map((call) => call.input.imageIds)).toEqual([[{ imageTag: 'stray' }]]);
    expect(ecr.registryRequests.slice(requestsBefore).filter((r) => r.method !== 'GET' && r.method !== 'HEAD')).toEqual([]);
  });

  it('a tag ECR will not move (IMMUTABLE repository) fails as TAG_IMMUTABLE with ECR reason; every other tag is copied', async () => {
    const repo = 'ecr-secondary/immutable';
    ecr.createRepository(repo, { imageTagMutability: 'IMMUTABLE' });
    await pushImage(B(), repo, '1.0', { seed: 'released-elsewhere' });
    await pushImage(plain.url, repo, '1.0');
    await pushImage(plain.url, repo, '1.1');
    const pair = open('secondary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();

    expect(report.done.copied).toEqual(['1.1']);
    expect(report.failed).toEqual([
      {
        tag: '1.0',
        code: 'TAG_IMMUTABLE',
        error: expect.stringMatching(/tag 1\.0 of ecr-secondary\/immutable .*cannot be overwritten because the repository is immutable/),
      },
    ]);
  });

  it('a role that may not create the repository: the error names it and ecr:CreateRepository; CreateRepository is asked once and nothing is uploaded', async () => {
    const repo = 'ecr-secondary/denied';
    await pushImage(plain.url, repo, 'a');
    await pushImage(plain.url, repo, 'b', { seed: 'b' });
    ecr.failNext('CreateRepository', 'AccessDeniedException');
    const requestsBefore = ecr.registryRequests.length;
    const apiBefore = ecr.apiCalls.length;
    const pair = open('secondary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();

    expect(report.status).toBe('failed');
    expect(report.failed.map((f) => f.tag)).toEqual(['a', 'b']);
    for (const failure of report.failed) expect(failure.error).toMatch(/repository ecr-secondary\/denied .*ecr:CreateRepository/);
    expect(calls('CreateRepository', apiBefore)).toHaveLength(1);
    expect(ecr.registryRequests.slice(requestsBefore).filter((r) => r.method === 'POST' || r.method === 'PUT')).toEqual([]);
  });

  it('a registry token that expires between two runs is renewed once on the 401, and the run goes on', async () => {
    const repo = 'ecr-secondary/expiry';
    await pushImage(plain.url, repo, 'one');
    const first = open('secondary');
    expect((await syncRepository(first.primary, first.secondary, validateRepositoryName(repo))).status).toBe('synced');
    await first.close();
    ecr.expireTokens();
    await pushImage(plain.url, repo, 'two', { seed: 'two' });
    const apiBefore = ecr.apiCalls.length;
    const requestsBefore = ecr.registryRequests.length;
    const pair = open('secondary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();

    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    expect(report.done.copied).toEqual(['two']);
    expect(calls('GetAuthorizationToken', apiBefore)).toHaveLength(1);
    expect(ecr.registryRequests.slice(requestsBefore).some((r) => r.status === 401)).toBe(true);
  });
  it('`geo-sync run`: an immutable tag is recorded as tags-refused (no retry scheduled), `status` shows it as needing a human, the other tag is copied', async () => {
    const repo = 'ecr-run-immutable/app';
    ecr.createRepository(repo, { imageTagMutability: 'IMMUTABLE' });
    await pushImage(B(), repo, 'stable', { seed: 'elsewhere' });
    await pushImage(plain.url, repo, 'stable');
    await pushImage(plain.url, repo, 'next', { seed: 'next' });
    const dir = mkdtempSync(join(tmpdir(), 'geo-sync-ecr-immutable-'));
    try {
      const env = { ...awsEnv(), GEO_SYNC_PRIMARY_URL: plain.url, ...ecrAs('SECONDARY'), GEO_SYNC_STATE_DIR: dir };
      const result = await runGeoSync(['run', '--repository', repo, '--json'], env);

      expect(result.code, result.stderr).toBe(1);
      const summary = JSON.parse(result.stdout) as { retriesPending: number; records: { syncState: string; syncError: string; retryCount: number }[] };
      expect(summary.records).toMatchObject([{ syncState: 'tags-refused', retryCount: 0 }]);
      expect(summary.records[0]!.syncError).toMatch(/^TAG_IMMUTABLE: tag stable of ecr-run-immutable\/app .*immutable/);
      expect(summary.retriesPending).toBe(0);
      expect(Object.keys(await readTags(B(), repo)).sort()).toEqual(['next', 'stable']);
      const status = await runGeoSync(['status'], env);
      expect(status.stdout).toMatch(/ecr-run-immutable\/app .*tags-refused .*tags refused/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ECR registry tokens that expire', () => {
  it('mid-run: every token refused after the first answer; the run renews once and copies every tag', async () => {
    const repo = 'ecr-expiry/mid-run';
    for (const tag of ['a', 'b', 'c', 'd']) await pushImage(plain.url, repo, tag, { seed: tag });
    let expired = false;
    const apiBefore = ecr.apiCalls.length;
    const requestsBefore = ecr.registryRequests.length;
    const onResponse = () => void (expired || ((expired = true), ecr.expireTokens()));
    const pair = open('secondary', { onResponse, concurrency: 1 });
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo), { concurrency: 1 });
    await pair.close();

    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    expect(report.done.copied).toEqual(['a', 'b', 'c', 'd']);
    const sent = ecr.registryRequests.slice(requestsBefore);
    expect(sent.filter((r) => r.status === 401)).toHaveLength(1);
    // Refused mid-run: after the token had been taken.
    expect(
      sent
        .slice(
          0,
          sent.findIndex((r) => r.status === 401),
        )
        .some((r) => r.status >= 200 && r.status < 300),
    ).toBe(true);
    expect(calls('GetAuthorizationToken', apiBefore).length).toBeLessThanOrEqual(2);
  });

  it("at a blob's PUT: the stream the refused PUT began is not sent again; a fresh upload copies the blob, digest intact", async () => {
    const repo = 'ecr-expiry/at-put';
    await pushImage(plain.url, repo, 'only', { seed: 'expiry at put' });
    const requestsBefore = ecr.registryRequests.length;
    // Every token expires as the first blob PUT arrives: that PUT is refused after its body began.
    ecr.expireTokensAt((method, path) => method === 'PUT' && path.includes('/blobs/uploads/'));
    const pair = open('secondary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();

    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    const sent = ecr.registryRequests.slice(requestsBefore);
    // The PUT that met the expiry, and any other that took its header before the renewal, was refused;
    // none was sent again with its stream half read (that answers 400 DIGEST_INVALID).
    expect(sent.filter((r) => r.status === 401 && r.method === 'PUT').length).toBeGreaterThanOrEqual(1);
    expect(sent.filter((r) => r.status >= 400 && r.status !== 401)).toEqual([]);
    expect(await readTags(B(), repo)).toEqual(await readTags(plain.url, repo));
  });

  it('answered 403 "Your authorization token has expired", as ECR has answered it: renewed once too', async () => {
    const strict = await startEcrStandIn({ expiredTokenStatus: 403 });
    try {
      const repo = 'ecr-expiry/forbidden';
      await pushImage(plain.url, repo, 'one');
      const env = {
        GEO_SYNC_PRIMARY_URL: plain.url,
        GEO_SYNC_SECONDARY_URL: strict.registryUrl,
        GEO_SYNC_SECONDARY_TYPE: 'ecr',
        GEO_SYNC_SECONDARY_REGION: strict.region,
      };
      const sync = async () => {
        const endpoints = endpointsFromEnv(env);
        const [primary, secondary] = [openRegistry(endpoints.primary), openRegistry(endpoints.secondaries[0]!.endpoint)];
        try {
          return await syncRepository(primary, secondary, validateRepositoryName(repo));
        } finally {
          await Promise.all([primary.close(), secondary.close()]);
        }
      };
      process.env.AWS_ENDPOINT_URL_ECR = strict.apiUrl;
      expect((await sync()).status).toBe('synced');
      strict.expireTokens();
      await pushImage(plain.url, repo, 'two', { seed: 'two' });
      const report = await sync();
      expect(report.status, JSON.stringify(report.failed)).toBe('synced');
      expect(report.done.copied).toEqual(['two']);
      expect(strict.registryRequests.some((r) => r.status === 403)).toBe(true);
    } finally {
      process.env.AWS_ENDPOINT_URL_ECR = ecr.apiUrl;
      await strict.stop();
    }
  }, 60_000);
});

describe('ECR as the primary', () => {
  it('lists tags with ListImages: a sync to docker-registry HEADs no ECR tag', async () => {
    const repo = 'ecr-primary/app';
    ecr.createRepository(repo);
    const tags = ['a', 'b', 'c', 'd', 'e'];
    for (const tag of tags) await pushImage(B(), repo, tag, { seed: tag });
    const first = open('primary');
    const copied = await syncRepository(first.primary, first.secondary, validateRepositoryName(repo));
    await first.close();
    expect(copied.done.copied).toEqual(tags);
    expect(await readTags(plain.url, repo)).toEqual(await readTags(B(), repo));

    const requestsBefore = ecr.registryRequests.length;
    const pair = open('primary');
    const noop = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();
    expect(noop.status).toBe('synced');
    const requests = ecr.registryRequests.slice(requestsBefore);
    console.info(
      `no-op sync, ECR primary, ${tags.length} tags: ${requests.length} registry requests (${requests.map((r) => `${r.method} ${r.path}`).join(', ')})`,
    );
    expect(requests.filter((r) => r.path.includes('/manifests/'))).toEqual([]);
  });

  it('`geo-sync run` lists the repositories through DescribeRepositories, never the catalog, and syncs each', async () => {
    ecr.createRepository('ecr-run/one');
    ecr.createRepository('ecr-run/two');
    await pushImage(B(), 'ecr-run/one', 'v1');
    await pushImage(B(), 'ecr-run/two', 'v1', { seed: 'two' });
    const apiBefore = ecr.apiCalls.length;
    const requestsBefore = ecr.registryRequests.length;
    const env = { ...awsEnv(), ...ecrAs('PRIMARY'), GEO_SYNC_SECONDARY_URL: plain.url, GEO_SYNC_STATE_DIR: stateDir };
    const result = await runGeoSync(['run', '--prefix', 'ecr-run/', '--json'], env);

    expect(result.code, result.stderr).toBe(0);
    const rows = (JSON.parse(result.stdout) as { records: { repository: string; status: string }[] }).records;
    expect(rows.map((r) => [r.repository, r.status])).toEqual([
      ['ecr-run/one', 'synced'],
      ['ecr-run/two', 'synced'],
    ]);
    expect(calls('DescribeRepositories', apiBefore).length).toBeGreaterThan(0);
    expect(ecr.registryRequests.slice(requestsBefore).filter((r) => r.path.startsWith('/v2/_catalog'))).toEqual([]);
    for (const repo of ['ecr-run/one', 'ecr-run/two']) expect(await readTags(plain.url, repo)).toEqual(await readTags(B(), repo));
  });
});

describe('ECR referrers through ECR API (DescribeImages, BatchGetImage)', () => {
  let api: ReferrersRegistry;
  beforeAll(async () => {
    api = await startReferrersRegistry();
  }, REFERRERS_REGISTRY_START_TIMEOUT_MS);
  afterAll(() => api?.stop());

  const referrerGets = (from: number) => ecr.registryRequests.slice(from).filter((r) => r.path.includes('/referrers/'));

  it('an ECR primary: a signature syncs to docker-registry (tag schema) and to a referrers-API registry, with no referrers GET to ECR', async () => {
    const repo = 'ecr-primary/signed';
    ecr.createRepository(repo);
    const image = await pushImage(B(), repo, 'v1');
    const signature = await pushSignature(B(), repo, image);

    const requestsBefore = ecr.registryRequests.length;
    const apiBefore = ecr.apiCalls.length;
    const pair = open('primary');
    const toPlain = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();
    expect(toPlain.status, JSON.stringify(toPlain.failed)).toBe('synced');
    expect((await readReferrersTagIndex(plain.url, repo, image.digest))?.map((r) => r.digest)).toEqual([signature.digest]);

    const primary = openRegistry(endpointsFromEnv({ ...ecrAs('PRIMARY'), GEO_SYNC_SECONDARY_URL: api.url }).primary);
    const secondary = openRegistry({ url: api.url });
    const toApi = await syncRepository(primary, secondary, validateRepositoryName(repo));
    await Promise.all([primary.close(), secondary.close()]);
    expect(toApi.status, JSON.stringify(toApi.failed)).toBe('synced');
    expect(await readReferrers(api.url, repo, image.digest)).toEqual([signature.descriptor]);

    expect(referrerGets(requestsBefore)).toEqual([]);
    expect(calls('DescribeImages', apiBefore).length).toBeGreaterThan(0);
    expect(calls('BatchGetImage', apiBefore).map((call) => call.input.imageIds)).toContainEqual([{ imageDigest: signature.digest }]);
  });

  it('a role refused ecr:DescribeImages still gets the referrers, over the registry API', async () => {
    const repo = 'ecr-primary/signed-denied';
    ecr.createRepository(repo);
    const image = await pushImage(B(), repo, 'v1');
    const signature = await pushSignature(B(), repo, image);
    ecr.failNext('DescribeImages', 'AccessDeniedException');
    const primary = openRegistry(endpointsFromEnv({ ...ecrAs('PRIMARY'), GEO_SYNC_SECONDARY_URL: api.url }).primary);
    const requestsBefore = ecr.registryRequests.length;
    const found = await primary.listReferrers(validateRepositoryName(repo), image.digest);
    await primary.close();
    expect(found).toEqual([
      { digest: signature.digest, mediaType: signature.descriptor.mediaType, size: signature.descriptor.size, artifactType: signature.artifactType },
    ]);
    expect(referrerGets(requestsBefore)).toHaveLength(1);
  });

  it.each([
    ['an ECR secondary, from a referrers-API registry', 'secondary'],
    ['ECR to ECR (a second registry as a prefix of the same one)', 'both'],
  ] as const)('%s: a new referrer of a multi-arch child is copied by a sync with no tag to copy; verify agrees', async (_what, sides) => {
    const repo = `ecr-children/${sides}`;
    const source = sides === 'secondary' ? api.url : B();
    if (sides === 'both') ecr.createRepository(repo);
    const multi = await pushMultiArch(source, repo, 'multi', 'oci', repo);
    const secondaries = [{ name: 'dr', url: ecr.registryUrl, type: 'ecr', region: ecr.region, ...(sides === 'both' && { prefix: 'dr/' }) }];
    const env = { ...(sides === 'both' ? ecrAs('PRIMARY') : { GEO_SYNC_PRIMARY_URL: api.url }), GEO_SYNC_SECONDARIES: JSON.stringify(secondaries) };
    const openPair = () => {
      const endpoints = endpointsFromEnv(env);
      const site = endpoints.secondaries[0]!;
      return { primary: openRegistry(endpoints.primary), secondary: openRegistry(site.endpoint, { prefix: site.scope.prefix }) };
    };
    const name = validateRepositoryName(repo);
    let pair = openPair();
    expect((await syncRepository(pair.primary, pair.secondary, name)).status).toBe('synced');
    await Promise.all([pair.primary.close(), pair.secondary.close()]);

    const signature = await pushSignature(source, repo, multi.children[0]!);
    pair = openPair();
    const report = await syncRepository(pair.primary, pair.secondary, name);
    const verified = await verifyRepository(pair.primary, pair.secondary, name);
    await Promise.all([pair.primary.close(), pair.secondary.close()]);
    expect(report.done.copied).toEqual([]);
    expect(report.referrers?.done.copied.map((edge) => edge.digest)).toEqual([signature.digest]);
    expect(verified.status, JSON.stringify(verified.referrers)).toBe('synced');
    const copy = sides === 'both' ? `dr/${repo}` : repo;
    expect(await readReferrers(B(), copy, multi.children[0]!.digest)).toEqual([signature.descriptor]);
  });

  it("an ECR secondary: a referrer the sync wrote is seen by the same run's later reads", async () => {
    const repo = 'ecr-secondary/signed';
    const image = await pushImage(api.url, repo, 'v1');
    const signature = await pushSignature(api.url, repo, image);
    const primary = openRegistry({ url: api.url });
    const secondary = openRegistry(endpointsFromEnv({ GEO_SYNC_PRIMARY_URL: api.url, ...ecrAs('SECONDARY') }).secondaries[0]!.endpoint);
    expect(await secondary.listReferrers(validateRepositoryName(repo), image.digest)).toBe('unknown');
    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));
    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    const seen = await secondary.listReferrers(validateRepositoryName(repo), image.digest);
    const verified = await verifyRepository(primary, secondary, validateRepositoryName(repo));
    const again = await syncRepository(primary, secondary, validateRepositoryName(repo));
    await Promise.all([primary.close(), secondary.close()]);
    expect(seen).toEqual([
      { digest: signature.digest, mediaType: signature.descriptor.mediaType, size: signature.descriptor.size, artifactType: signature.artifactType },
    ]);
    expect(verified.referrers).toMatchObject({ primaryReferrers: 1, secondaryReferrers: 1, missing: [], extra: [], mismatched: [] });
    expect(again.status).toBe('synced');
    expect(again.done.copied).toEqual([]);
    expect(await readReferrers(B(), repo, image.digest)).toEqual([signature.descriptor]);
  });
});

describe('ECR primary: the children of multi-arch indexes found through BatchGetImage', () => {
  /** GETs of these manifests on ECR's registry API since `from`. */
  const manifestGets = (from: number, digests: string[]) =>
    ecr.registryRequests.slice(from).filter((r) => r.method === 'GET' && digests.some((digest) => r.path.endsWith(`/manifests/${digest}`)));

  /**
   * An ECR repository of two multi-arch tags (an OCI index, a Docker manifest list) and a plain
   * image, a signature on one child of each index, copied once to docker-registry (tag schema).
   */
  async function copiedOnce(repo: string) {
    ecr.createRepository(repo);
    const oci = await pushMultiArch(B(), repo, 'multi-oci', 'oci', repo);
    const docker = await pushMultiArch(B(), repo, 'multi-docker', 'docker', repo);
    await pushImage(B(), repo, 'single');
    for (const child of [oci.children[0]!, docker.children[1]!]) await pushSignature(B(), repo, child, { seed: 'first' });
    const pair = open('primary');
    const first = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();
    expect(first.status, JSON.stringify(first.failed)).toBe('synced');
    return { indexes: [oci.index.digest, docker.index.digest], children: [oci.children[1]!, docker.children[0]!] };
  }

  /** A new signature on a child of each index, then a sync with no tag to copy: only the indexes' children lead to them. */
  async function signAndSync(repo: string, children: PushedManifest[]) {
    const signatures = [];
    for (const child of children) signatures.push(await pushSignature(B(), repo, child, { seed: 'second' }));
    const requestsBefore = ecr.registryRequests.length;
    const apiBefore = ecr.apiCalls.length;
    const pair = open('primary');
    const report = await syncRepository(pair.primary, pair.secondary, validateRepositoryName(repo));
    await pair.close();
    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    expect(report.done.copied).toEqual([]);
    // The secondary's own tags beside the primary's: the tag-schema indexes of the referrers.
    const onSecondary = Object.entries(await readTags(plain.url, repo)).filter(([tag]) => !tag.startsWith('sha256-'));
    expect(Object.fromEntries(onSecondary)).toEqual(await readTags(B(), repo));
    for (const [i, child] of children.entries()) {
      expect((await readReferrersTagIndex(plain.url, repo, child.digest))?.map((r) => r.digest)).toEqual([signatures[i]!.digest]);
    }
    return { requestsBefore, apiBefore };
  }

  it('a sync with no tag to copy reads the indexes in one BatchGetImage, GETs none over the registry API, and copies a new referrer of a child', async () => {
    const repo = 'ecr-multi/served';
    const { indexes, children } = await copiedOnce(repo);
    const { requestsBefore, apiBefore } = await signAndSync(repo, children);

    expect(manifestGets(requestsBefore, indexes)).toEqual([]);
    const batched = calls('BatchGetImage', apiBefore).filter((call) => (call.input.acceptedMediaTypes as string[]).includes(MediaType.ociIndex));
    expect(batched).toHaveLength(1);
    expect(batched[0]!.input.acceptedMediaTypes).toContain(MediaType.dockerList);
    expect((batched[0]!.input.imageIds as { imageDigest: string }[]).map((id) => id.imageDigest).sort()).toEqual([...indexes].sort());
  });

  it.each([
    ['refuses the index types as an invalid parameter', 'invalid-parameter'],
    ['answers each index as a failures[] entry', 'failure'],
    ['gives other bytes than the digest asked for', 'other-bytes'],
  ] as const)('where ECR %s, each index is read over the registry API instead, and the sync is still exact', async (_what, mode) => {
    const repo = `ecr-multi/${mode}`;
    const { indexes, children } = await copiedOnce(repo);
    ecr.serveIndexTypes(mode);
    try {
      const { requestsBefore } = await signAndSync(repo, children);
      expect(manifestGets(requestsBefore, indexes).map((r) => r.status)).toEqual([200, 200]);
    } finally {
      ecr.serveIndexTypes('served');
    }
  });
});

describe('ECR through the CLI', () => {
  it('ECR to ECR with referrers: a signature is copied, and once gone from the primary removed by imageDigest', async () => {
    const repo = 'ecr-refs/app';
    ecr.createRepository(repo);
    const image = await pushImage(B(), repo, 'v1');
    const signature = await pushSignature(B(), repo, image);
    const secondaries = [{ name: 'dr', url: ecr.registryUrl, type: 'ecr', region: ecr.region, prefix: 'dr/' }];
    const env = { ...awsEnv(), ...ecrAs('PRIMARY'), GEO_SYNC_SECONDARIES: JSON.stringify(secondaries) };
    const copied = await runGeoSync(['sync', repo, '--json'], env);
    expect(copied.code, copied.stderr + copied.stdout).toBe(0);
    expect((await readReferrers(B(), `dr/${repo}`, image.digest)).map((r) => r.digest)).toEqual([signature.digest]);

    await deleteManifest(B(), repo, signature.digest);
    const apiBefore = ecr.apiCalls.length;
    const removed = await runGeoSync(['sync', repo, '--json'], env);
    expect(removed.code, removed.stderr + removed.stdout).toBe(0);
    expect(calls('BatchDeleteImage', apiBefore).map((call) => call.input)).toEqual([
      { repositoryName: `dr/${repo}`, imageIds: [{ imageDigest: signature.digest }] },
    ]);
    expect(await readReferrers(B(), `dr/${repo}`, image.digest)).toEqual([]);
    expect(await readTags(B(), `dr/${repo}`)).toEqual({ v1: image.digest });
  });

  it('ECR to ECR (a second registry as a prefix of the same one): created with the entry settings, tags copied, an extra tag removed, verify exit 0', async () => {
    const repo = 'ecr-both/app';
    ecr.createRepository(repo);
    const image = await pushImage(B(), repo, 'v1');
    await pushManifest(B(), repo, 'stable', image.bytes, image.mediaType);
    const secondaries = [
      {
        name: 'dr',
        url: ecr.registryUrl,
        type: 'ecr',
        region: ecr.region,
        prefix: 'dr/',
        repositorySettings: { scanOnPush: true, encryptionType: 'KMS', kmsKey: 'alias/dr', resourceTags: { purpose: 'disaster-recovery' } },
      },
    ];
    const env = { ...awsEnv(), ...ecrAs('PRIMARY'), GEO_SYNC_SECONDARIES: JSON.stringify(secondaries) };
    const sync = await runGeoSync(['sync', repo, '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout).done.copied).toEqual(['stable', 'v1']);
    expect(ecr.repository(`dr/${repo}`)).toMatchObject({
      imageTagMutability: 'MUTABLE',
      encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/dr' },
      imageScanningConfiguration: { scanOnPush: true },
      tags: [{ Key: 'purpose', Value: 'disaster-recovery' }],
    });
    expect(await readTags(B(), `dr/${repo}`)).toEqual(await readTags(B(), repo));

    await pushManifest(B(), `dr/${repo}`, 'extra', image.bytes, image.mediaType);
    const again = await runGeoSync(['sync', repo, '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).done.removed).toEqual(['extra']);
    const verify = await runGeoSync(['verify', repo, '--json'], env);
    expect(verify.code, verify.stdout).toBe(0);
    expect(await readTags(B(), `dr/${repo}`)).toEqual({ stable: image.digest, v1: image.digest });
  });

  it('`geo-sync sync` to an ECR secondary: the repository is created, the tags copied, exit 0', async () => {
    const repo = 'ecr-cli/app';
    await pushImage(plain.url, repo, 'v1');
    const env = { ...awsEnv(), GEO_SYNC_PRIMARY_URL: plain.url, ...ecrAs('SECONDARY') };
    const result = await runGeoSync(['sync', repo, '--json'], env);

    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).done.copied).toEqual(['v1']);
    expect(ecr.repository(repo)).toBeDefined();
    expect(await readTags(B(), repo)).toEqual(await readTags(plain.url, repo));
    // The registry token is never printed or logged.
    expect(result.stderr + result.stdout).not.toMatch(/Basic |AWS:/);
  });
});

describe('requestsPerSecond on an ECR secondary', () => {
  it('paces its registry API and its ECR API calls together: no more than 10 × seconds + a second’s burst in any window, every tag copied', async () => {
    const repo = 'ecr-paced/app';
    const tags = Array.from({ length: 6 }, (_, i) => `t${i}`);
    for (const tag of tags) await pushImage(plain.url, repo, tag, { seed: `ecr-paced/${tag}` });
    const endpoints = endpointsFromEnv({ GEO_SYNC_PRIMARY_URL: plain.url, ...ecrAs('SECONDARY'), GEO_SYNC_SECONDARY_REQUESTS_PER_SECOND: '10' });
    const from = { api: ecr.apiCalls.length, registry: ecr.registryRequests.length };
    const primary = openRegistry(endpoints.primary);
    const secondary = openRegistry(endpoints.secondaries[0]!.endpoint);
    const report = await syncRepository(primary, secondary, validateRepositoryName(repo)).finally(() => Promise.all([primary.close(), secondary.close()]));
    expect(report.status, JSON.stringify(report.failed)).toBe('synced');
    expect(await readTags(B(), repo)).toEqual(await readTags(plain.url, repo));

    const arrivals = [...ecr.apiCalls.slice(from.api), ...ecr.registryRequests.slice(from.registry)].map((request) => request.at).sort((a, b) => a - b);
    expect(ecr.apiCalls.length - from.api).toBeGreaterThan(0);
    expect(arrivals.length).toBeGreaterThan(30);
    // As in test/pace-sync.test.ts: sends are bounded; arrivals may lag them by an event loop's turn.
    for (const windowMs of [250, 500, 1_000, 2_000]) {
      const most = Math.max(...arrivals.map((start) => arrivals.filter((at) => at >= start && at < start + windowMs).length));
      expect(most, `${windowMs} ms`).toBeLessThanOrEqual(10 + 10 * ((windowMs + 250) / 1000));
    }
  });
});
