import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';
import { startTokenIssuer, type TokenIssuer } from './support/token-issuer.js';
import { createRegistryClient, syncRepository } from '../shared/engine/index.js';

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
      const from = createRegistryClient({ url: staging.url });
      const to = createRegistryClient({ url: registry.url, username: user, password: users[user] });
      await syncRepository(from, to, repo);
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
    const check = createRegistryClient({ url: secondary.url, username: 'secondary_bot', password: users.secondary_bot });
    expect(await check.listTags(repo).then((t) => t?.sort())).toEqual(['v1', 'v2']);
    await check.close();
  });

  it('refreshes tokens that expire during a run', async () => {
    const repo = 'bearer/expiring';
    await seed(primary, 'primary_bot', repo, ['a', 'b', 'c']);
    issuer.setLifetime(1);
    try {
      const before = issuer.requests.length;
      const p = createRegistryClient({ url: primary.url, username: 'primary_bot', password: users.primary_bot }, { concurrency: 1 });
      const s = createRegistryClient({ url: secondary.url, username: 'secondary_bot', password: users.secondary_bot }, { concurrency: 1 });
      const first = await syncRepository(p, s, repo);
      // Outlive the tokens, then reuse the same clients: a 401 or the lifetime makes them fetch new ones.
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const second = await syncRepository(p, s, repo);
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
    const result = await runGeoSync(['sync', repo, '--max-prune', '1'], env({ GEO_SYNC_SECONDARY_PASSWORD: 'not-the-password', GEO_SYNC_PRIMARY_PASSWORD: 'nope-either' }));
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/refused the credentials/);
    expect(result.stderr).not.toContain('not-the-password');
    const check = createRegistryClient({ url: secondary.url, username: 'secondary_bot', password: users.secondary_bot });
    expect(await check.listTags(repo)).toEqual(['keep']);
    await check.close();
  });

  it('reads anonymously where the token service grants anonymous pulls', async () => {
    const repo = 'bearer/public';
    await seed(primary, 'primary_bot', repo, ['v1']);
    const anonymous = createRegistryClient({ url: primary.url });
    expect(await anonymous.listTags(repo)).toEqual(['v1']);
    await anonymous.close();
    expect(readTags).toBeDefined();
  });
});
