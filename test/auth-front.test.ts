import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthFront, type AuthFront } from './support/auth-front.js';
import { runGeoSync } from './support/cli.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

/**
 * Plain registries behind an authenticating front that answers 401 to every request without
 * credentials (nginx `auth_basic` is the common setup). Such a front must not be taken for
 * GitLab's registry, and the secondary's tags must be read as they are, never as "none".
 */
const primaryUser = { username: 'geo-primary', password: 'Pr1mary-Fr0nt-Secret' };
const secondaryUser = { username: 'geo-secondary', password: 'Sec0ndary-Fr0nt-Secret' };

let registries: RegistryPair;
let primaryFront: AuthFront;
let secondaryFront: AuthFront;

beforeAll(async () => {
  registries = await startRegistryPair();
  [primaryFront, secondaryFront] = await Promise.all([
    startAuthFront(registries.primary.url, primaryUser, 'primary'),
    startAuthFront(registries.secondary.url, secondaryUser, 'secondary'),
  ]);
});
afterAll(async () => {
  await Promise.all([primaryFront?.stop(), secondaryFront?.stop()]);
  await registries?.stop();
});

/** Seeds straight into the registries: v1 equal on both, v2 re-pointed, v3 missing and `stray` extra on the secondary. */
async function seedDifferences(repo: string) {
  const P = registries.primary.url;
  const S = registries.secondary.url;
  const v1 = await pushImage(P, repo, 'v1');
  const v2 = await pushImage(P, repo, 'v2');
  await pushImage(P, repo, 'v3');
  expect((await pushImage(S, repo, 'v1')).digest).toBe(v1.digest);
  const stale = await pushImage(S, repo, 'v2', { seed: 'stale' });
  await pushImage(S, repo, 'stray');
  return { primaryV2: v2.digest, secondaryV2: stale.digest };
}

const credentials = {
  GEO_SYNC_PRIMARY_USERNAME: primaryUser.username,
  GEO_SYNC_PRIMARY_PASSWORD: primaryUser.password,
  GEO_SYNC_SECONDARY_USERNAME: secondaryUser.username,
  GEO_SYNC_SECONDARY_PASSWORD: secondaryUser.password,
  GEO_SYNC_LOG_LEVEL: 'debug',
};

describe.each([
  { fronted: 'the secondary', primary: () => registries.primary.url },
  { fronted: 'both registries', primary: () => primaryFront.url },
])('an authenticating front before $fronted', ({ fronted, primary }) => {
  it('verify names exactly the missing, extra and re-pointed tags; sync makes the secondary exact, extra tag removed', async () => {
    const repo = `front/${fronted === 'both registries' ? 'both' : 'secondary'}`;
    const { primaryV2, secondaryV2 } = await seedDifferences(repo);
    const env = { GEO_SYNC_PRIMARY_URL: primary(), GEO_SYNC_SECONDARY_URL: secondaryFront.url, ...credentials };

    const verify = await runGeoSync(['verify', repo, '--json'], env);
    expect(verify.stderr).not.toMatch(/"level":"error"/);
    expect(verify.code).toBe(1);
    expect(JSON.parse(verify.stdout)).toMatchObject({
      status: 'mismatch',
      primaryTags: 3,
      secondaryTags: 3,
      missing: ['v3'],
      extra: ['stray'],
      mismatched: [{ tag: 'v2', primary: primaryV2, secondary: secondaryV2 }],
    });

    const sync = await runGeoSync(['sync', repo, '--json'], env);
    expect(sync.code).toBe(0);
    expect(JSON.parse(sync.stdout)).toMatchObject({ status: 'synced', done: { copied: ['v3'], repaired: ['v2'], removed: ['stray'] } });
    expect(await readTags(registries.secondary.url, repo)).toEqual(await readTags(registries.primary.url, repo));

    const again = await runGeoSync(['verify', repo, '--json'], env);
    expect(again.code).toBe(0);
    // The front was never taken for GitLab: its tag route was never asked.
    expect([...primaryFront.log, ...secondaryFront.log].filter((r) => r.path.startsWith('/gitlab/v1/repositories/'))).toEqual([]);
    for (const output of [verify, sync, again]) {
      expect(output.stdout + output.stderr).not.toContain(primaryUser.password);
      expect(output.stdout + output.stderr).not.toContain(secondaryUser.password);
    }
  });
});

describe('an authenticating front that refuses the credentials', () => {
  it('fails verify and sync with an authentication error (exit 3), never reads the secondary as empty, changes nothing', async () => {
    const repo = 'front/refused';
    await seedDifferences(repo);
    const before = await readTags(registries.secondary.url, repo);
    const env = {
      GEO_SYNC_PRIMARY_URL: registries.primary.url,
      GEO_SYNC_SECONDARY_URL: secondaryFront.url,
      ...credentials,
      GEO_SYNC_SECONDARY_PASSWORD: 'wrong',
    };

    for (const command of ['verify', 'sync']) {
      const result = await runGeoSync([command, repo, '--json'], env);
      expect(result.code).toBe(3);
      expect(JSON.parse(result.stdout).error).toMatchObject({ message: expect.stringMatching(/authentication refused/) });
    }
    expect(await readTags(registries.secondary.url, repo)).toEqual(before);
  });
});
