import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';
import { startTokenIssuer, type TokenIssuer } from './support/token-issuer.js';
import { startFaultProxy, type Fault, type FaultProxy } from './support/fault-proxy.js';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';

/** Bearer-token auth as GitLab does it: the registry points at a token service that signs scoped JWTs. */
describe('bearer-token authentication against a real registry', () => {
  const users = { primary_bot: 'Pr1mary-T0ken-Secret', secondary_bot: 'Sec0ndary-T0ken-Secret' };
  let issuer: TokenIssuer;
  let primary: TestRegistry;
  let secondary: TestRegistry;

  beforeAll(async () => {
    issuer = await startTokenIssuer(users);
    const token = { realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, rootCertBundle: issuer.certFile };
    [primary, secondary] = await Promise.all([startRegistry({ token }), startRegistry({ token })]);
  });
  afterAll(async () => {
    await Promise.all([primary?.stop(), secondary?.stop()]);
    await issuer?.stop();
  });

  /** Seeding goes through our own client too: the test helpers speak no bearer flow. */
  async function seed(registry: TestRegistry, user: keyof typeof users, repo: string, tags: string[]) {
    const staging = await startRegistry();
    try {
      for (const tag of tags) await pushImage(staging.url, repo, tag, { seed: `${registry.port}` });
      const from = new RegistryClient({ url: staging.url });
      const to = new RegistryClient({ url: registry.url, username: user, password: users[user] });
      await syncRepository(from, to, validateRepositoryName(repo));
      await Promise.all([from.close(), to.close()]);
    } finally {
      await staging.stop();
    }
  }

  const env = (overrides: Record<string, string> = {}) => ({
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_SECONDARY_URL: secondary.url,
    GEO_SYNC_PRIMARY_USERNAME: 'primary_bot',
    GEO_SYNC_PRIMARY_PASSWORD: users.primary_bot,
    GEO_SYNC_SECONDARY_USERNAME: 'secondary_bot',
    GEO_SYNC_SECONDARY_PASSWORD: users.secondary_bot,
    GEO_SYNC_LOG_LEVEL: 'debug',
    ...overrides,
  });

  it('syncs through the token flow, asking for scoped tokens, without printing secrets', async () => {
    const repo = 'bearer/app';
    await seed(primary, 'primary_bot', repo, ['v1', 'v2']);
    await seed(secondary, 'secondary_bot', repo, ['stray']);

    const result = await runGeoSync(['sync', repo, '--json', '--max-prune', '1'], env());

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).done).toEqual({ copied: ['v1', 'v2'], repaired: [], removed: ['stray'] });
    expect(issuer.requests.some((r) => r.user === 'secondary_bot' && r.scopes.includes(`repository:${repo}:pull,push`))).toBe(true);
    for (const secret of Object.values(users)) {
      expect(result.stdout + result.stderr).not.toContain(secret);
    }
    const check = new RegistryClient({ url: secondary.url, username: 'secondary_bot', password: users.secondary_bot });
    expect(await check.listTags(repo).then((t) => t?.sort())).toEqual(['v1', 'v2']);
    await check.close();
  });

  it('refreshes tokens that expire during a run', async () => {
    const repo = 'bearer/expiring';
    await seed(primary, 'primary_bot', repo, ['a', 'b', 'c']);
    issuer.setLifetime(1);
    try {
      const before = issuer.requests.length;
      const p = new RegistryClient({ url: primary.url, username: 'primary_bot', password: users.primary_bot }, { concurrency: 1 });
      const s = new RegistryClient({ url: secondary.url, username: 'secondary_bot', password: users.secondary_bot }, { concurrency: 1 });
      const first = await syncRepository(p, s, validateRepositoryName(repo));
      // Outlive the tokens, then reuse the same clients: a 401 or the lifetime makes them fetch new ones.
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const second = await syncRepository(p, s, validateRepositoryName(repo));
      await Promise.all([p.close(), s.close()]);
      expect(first.status).toBe('synced');
      expect(second.status).toBe('synced');
      expect(second.plan).toEqual({ copy: [], repair: [], remove: [] });
      expect(issuer.requests.length - before).toBeGreaterThanOrEqual(4);
    } finally {
      issuer.setLifetime(300);
    }
  });

  it('exits 3 with a clear message when the token service refuses the credentials, changing nothing', async () => {
    const repo = 'bearer/refused';
    await seed(secondary, 'secondary_bot', repo, ['keep']);
    const result = await runGeoSync(
      ['sync', repo, '--max-prune', '1'],
      env({ GEO_SYNC_SECONDARY_PASSWORD: 'not-the-password', GEO_SYNC_PRIMARY_PASSWORD: 'nope-either' }),
    );
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/refused the credentials/);
    expect(result.stderr).not.toContain('not-the-password');
    const check = new RegistryClient({ url: secondary.url, username: 'secondary_bot', password: users.secondary_bot });
    expect(await check.listTags(repo)).toEqual(['keep']);
    await check.close();
  });

  it('reads anonymously where the token service grants anonymous pulls', async () => {
    const repo = 'bearer/public';
    await seed(primary, 'primary_bot', repo, ['v1']);
    const anonymous = new RegistryClient({ url: primary.url });
    expect(await anonymous.listTags(repo)).toEqual(['v1']);
    await anonymous.close();
    expect(readTags).toBeDefined();
  });
});

/** The token service fails as registries do; its answers are retried by the same policy. */
describe('a token service that fails for a while', () => {
  const users = { primary_bot: 'Pr1mary-T0ken-Secret' };
  let issuer: TokenIssuer;
  let tokenProxy: FaultProxy;
  let primary: TestRegistry;
  let secondary: TestRegistry;

  beforeAll(async () => {
    issuer = await startTokenIssuer(users);
    tokenProxy = await startFaultProxy(new URL(issuer.realm).origin);
    // The primary sends its clients to the token service through the fault proxy.
    const token = { realm: `${tokenProxy.url}/token`, service: issuer.service, issuer: issuer.issuer, rootCertBundle: issuer.certFile };
    [primary, secondary] = await Promise.all([startRegistry({ token }), startRegistry()]);
    const staging = await startRegistry();
    try {
      for (const repo of ['token/503', 'token/429', 'token/reset', 'token/refused']) await pushImage(staging.url, repo, 'v1', { seed: repo });
      const from = new RegistryClient({ url: staging.url });
      const to = new RegistryClient({ url: primary.url, username: 'primary_bot', password: users.primary_bot });
      for (const repo of ['token/503', 'token/429', 'token/reset', 'token/refused']) await syncRepository(from, to, validateRepositoryName(repo));
      await Promise.all([from.close(), to.close()]);
    } finally {
      await staging.stop();
    }
  });
  afterAll(async () => {
    await Promise.all([primary?.stop(), secondary?.stop(), tokenProxy?.stop()]);
    await issuer?.stop();
  });

  /** Syncs `repo` with the token service answering `fault` to its first `times` requests; records each backoff instead of waiting. */
  async function syncThroughTokenFaults(repo: string, fault: Fault, times: number) {
    let injected = 0;
    tokenProxy.setRule(() => (injected < times ? (injected++, fault) : undefined));
    const waits: number[] = [];
    const options = { backoff: { baseMs: 5, capMs: 50 }, sleep: async (ms: number) => void waits.push(ms) };
    const p = new RegistryClient({ url: primary.url, username: 'primary_bot', password: users.primary_bot }, options);
    const s = new RegistryClient({ url: secondary.url }, options);
    try {
      const outcome = await syncRepository(p, s, validateRepositoryName(repo)).then(
        (report) => report.status,
        (error: { code?: string }) => error.code,
      );
      return { outcome, waits, injected, retries: p.stats.retries };
    } finally {
      tokenProxy.setRule(() => undefined);
      await Promise.all([p.close(), s.close()]);
    }
  }

  it.each([
    ['token/503', { kind: 'status', status: 503 }],
    ['token/reset', { kind: 'reset' }],
  ] as const)('%s: retries with the capped backoff and syncs', async (repo, fault) => {
    const { outcome, waits, injected, retries } = await syncThroughTokenFaults(repo, fault, 2);
    expect(outcome).toBe('synced');
    expect(injected).toBe(2);
    expect(retries).toBe(2);
    expect(waits).toHaveLength(2);
    for (const wait of waits) expect(wait).toBeLessThanOrEqual(50);
    expect(await readTags(secondary.url, repo)).toEqual(await readTags(primary.url, repo, `Bearer ${await tokenFor(repo)}`));
  });

  it('token/429: waits out Retry-After before asking again, and syncs', async () => {
    const { outcome, waits, injected } = await syncThroughTokenFaults('token/429', { kind: 'status', status: 429, headers: { 'retry-after': '3' } }, 2);
    expect(outcome).toBe('synced');
    expect(injected).toBe(2);
    expect(waits).toEqual([3000, 3000]);
  });

  it('token/refused: a refusal (403) is final: asked once, never retried', async () => {
    const { outcome, waits, injected } = await syncThroughTokenFaults('token/refused', { kind: 'status', status: 403 }, 10);
    expect(outcome).toBe('AUTH_REFUSED');
    expect(injected).toBe(1);
    expect(waits).toEqual([]);
    expect(await readTags(secondary.url, 'token/refused')).toEqual({});
  });

  /** A pull token straight from the issuer, to read the primary back without our client. */
  async function tokenFor(repo: string): Promise<string> {
    const url = `${issuer.realm}?service=${issuer.service}&scope=repository:${repo}:pull`;
    const response = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`primary_bot:${users.primary_bot}`).toString('base64')}` } });
    return ((await response.json()) as { token: string }).token;
  }
});
