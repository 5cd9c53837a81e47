import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, readTagMap, syncRepository, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { startAuthFront } from './support/auth-front.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { startGitlabApi, type GitlabApiServer } from './support/gitlab-api.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, pushMultiArch, readTags } from './support/seed.js';

let registries: RegistryPair;
let gitlab: GitlabApiServer;
const repo = 'gitlab/group/app';
const TAGS = 25;

beforeAll(async () => {
  registries = await startRegistryPair();
  for (let i = 0; i < TAGS - 1; i++) await pushImage(registries.primary.url, repo, `v${i}`);
  await pushMultiArch(registries.primary.url, repo, 'multi', 'oci');
  // Pages of 10: the API is followed across pages through its Link header.
  gitlab = await startGitlabApi(registries.primary.url, { pageLimit: 10 });
});
afterAll(async () => {
  await gitlab?.stop();
  await registries?.stop();
});

describe("GitLab's tag list API", () => {
  it('reads tags and digests from the API, paged, without a HEAD per tag', async () => {
    const client = new RegistryClient({ url: gitlab.url });
    const map = await readTagMap(client, validateRepositoryName(repo));
    await client.close();
    expect(Object.fromEntries([...map!].sort())).toEqual(await readTags(registries.primary.url, repo));
    expect(gitlab.counts['gitlab-tags']).toBe(3);
    expect(gitlab.counts['manifest-head'] ?? 0).toBe(0);
  });

  it('sends the plain listing beside the probe while its answer is unknown, and only then', async () => {
    const before = gitlab.counts['tags-list'] ?? 0;
    const client = new RegistryClient({ url: gitlab.url });
    await readTagMap(client, validateRepositoryName(repo));
    // Known to be GitLab, the next read asks its API alone.
    await readTagMap(client, validateRepositoryName(repo));
    await client.close();
    // The first read's plain page went out with the probe (far away, waiting for the probe first
    // is a round trip every run) and was spent unread.
    expect(gitlab.counts['tags-list']).toBe(before + 1);
    expect(gitlab.counts.probe).toBeGreaterThanOrEqual(1);
  });

  it('syncs and verifies through it against a plain secondary', async () => {
    const primary = new RegistryClient({ url: gitlab.url });
    const secondary = new RegistryClient({ url: registries.secondary.url });
    const report = await syncRepository(primary, secondary, validateRepositoryName(repo));
    const verify = await verifyRepository(primary, secondary, validateRepositoryName(repo));
    await Promise.all([primary.close(), secondary.close()]);
    expect(report.status).toBe('synced');
    expect(report.done.copied).toHaveLength(TAGS);
    expect(verify.status).toBe('synced');
    expect(await readTags(registries.secondary.url, repo)).toEqual(await readTags(registries.primary.url, repo));
  });

  it('falls back to listing and HEADs when the registry does not offer the API', async () => {
    const plain = await startGitlabApi(registries.primary.url, { enabled: false });
    const client = new RegistryClient({ url: plain.url });
    const map = await readTagMap(client, validateRepositoryName(repo));
    await client.close();
    await plain.stop();
    expect(map!.size).toBe(TAGS);
    expect(plain.counts.probe).toBe(1);
    expect(plain.counts['manifest-head']).toBe(TAGS);
  });

  it('falls back, and says why in the log, when the probe itself fails', async () => {
    const proxy = await startFaultProxy(gitlab.url);
    proxy.setRule(({ path }) => (path.startsWith('/gitlab/v1/') ? { kind: 'status', status: 500 } : undefined));
    const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (message: string, fields?: Record<string, unknown>) => void warnings.push({ message, fields }) };
    const client = new RegistryClient({ url: proxy.url }, { retries: 0, logger });
    const map = await readTagMap(client, validateRepositoryName(repo));
    await client.close();
    await proxy.stop();
    expect(Object.fromEntries([...map!].sort())).toEqual(await readTags(registries.primary.url, repo));
    expect(proxy.log.filter((r) => r.path.includes('/manifests/')).length).toBe(TAGS);
    expect(warnings).toEqual([
      { message: expect.stringMatching(/GitLab API probe failed/), fields: expect.objectContaining({ reason: expect.stringMatching(/500/) }) },
    ]);
  });

  it('is not used when turned off', async () => {
    const before = gitlab.counts['gitlab-tags'] ?? 0;
    const client = new RegistryClient({ url: gitlab.url });
    expect((await readTagMap(client, validateRepositoryName(repo), { gitlabApi: false }))!.size).toBe(TAGS);
    await client.close();
    expect(gitlab.counts['gitlab-tags']).toBe(before);
  });

  it('answers null for a repository that neither the API nor the plain API knows', async () => {
    const before = gitlab.counts['tags-list'] ?? 0;
    const client = new RegistryClient({ url: gitlab.url });
    expect(await readTagMap(client, validateRepositoryName('gitlab/missing'))).toBeNull();
    await client.close();
    expect(gitlab.counts['tags-list']).toBe(before + 1);
  });

  it('does not take a 404 from the API for an absent repository when the plain API lists it', async () => {
    // GitLab's API knows only the repositories in its metadata database; /v2/ still serves the others.
    const partial = await startGitlabApi(registries.primary.url, { unknownToApi: [repo] });
    const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (message: string, fields?: Record<string, unknown>) => void warnings.push({ message, fields }) };
    const client = new RegistryClient({ url: partial.url }, { logger });
    const map = await readTagMap(client, validateRepositoryName(repo), { logger });
    await client.close();
    await partial.stop();
    expect(Object.fromEntries([...map!].sort())).toEqual(await readTags(registries.primary.url, repo));
    expect(partial.counts).toMatchObject({ probe: 1, 'gitlab-tags': 1, 'tags-list': 1, 'manifest-head': TAGS });
    expect(warnings).toEqual([
      { message: expect.stringMatching(/GitLab tag API does not know/), fields: expect.objectContaining({ repository: repo, tags: TAGS }) },
    ]);
  });

  it('is not assumed on a 401: a plain registry behind an authenticating front is read with the plain API', async () => {
    const front = await startAuthFront(registries.primary.url, { username: 'geo', password: 'front-secret' });
    const client = new RegistryClient({ url: front.url, username: 'geo', password: 'front-secret' });
    const offered = await client.hasGitlabTagApi();
    const map = await readTagMap(client, validateRepositoryName(repo));
    await client.close();
    await front.stop();
    expect(offered).toBe(false);
    // The probe's 401 was answered with the credentials; the registry behind then said 404.
    expect(front.log.filter((r) => r.path === '/gitlab/v1/').map((r) => r.status)).toEqual([401, 404]);
    expect(front.log.filter((r) => r.path.startsWith('/gitlab/v1/repositories/'))).toEqual([]);
    expect(Object.fromEntries([...map!].sort())).toEqual(await readTags(registries.primary.url, repo));
  });

  it("is not assumed on a 200 without GitLab's version header", async () => {
    const proxy = await startFaultProxy(registries.primary.url, ({ path }) => (path === '/gitlab/v1/' ? { kind: 'status', status: 200 } : undefined));
    const client = new RegistryClient({ url: proxy.url });
    const offered = await client.hasGitlabTagApi();
    const map = await readTagMap(client, validateRepositoryName(repo));
    await client.close();
    await proxy.stop();
    expect(offered).toBe(false);
    expect(proxy.log.filter((r) => r.path.startsWith('/gitlab/v1/repositories/'))).toEqual([]);
    expect(map!.size).toBe(TAGS);
  });
});
