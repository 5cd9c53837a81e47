// The prune guard in `geo-sync run` (the real binary, real registries): measured against the tags
// both sides hold together, recorded as its own state, shown by `status`, passed with --max-prune.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync } from './support/cli.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

let registries: RegistryPair;
let stateDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  registries = await startRegistryPair();
  stateDir = mkdtempSync(join(tmpdir(), 'geo-sync-guard-state-'));
  env = { GEO_SYNC_PRIMARY_URL: registries.primary.url, GEO_SYNC_SECONDARY_URL: registries.secondary.url, GEO_SYNC_STATE_DIR: stateDir };
});

afterAll(async () => {
  await registries?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

interface Row {
  repository: string;
  status: string;
  syncState: string;
  syncError?: string;
  retryCount: number;
  nextRetryAt?: string;
  lastSync?: { removed: number };
}

describe('geo-sync run and the prune guard', () => {
  it('a first run where a secondary repository holds only a stray tag and the primary five: the guard does not hold, the stray goes, exit 0', async () => {
    const repositories = ['first/a', 'first/b', 'first/c', 'first/stray'];
    for (const repository of repositories.slice(0, 3)) for (const tag of ['1.0', '1.1']) await pushImage(P(), repository, tag);
    for (const tag of ['v1', 'v2', 'v3', 'v4', 'v5']) await pushImage(P(), 'first/stray', tag);
    await pushImage(S(), 'first/stray', 'stray', { seed: 'stray' });

    const result = await runGeoSync(['run', '--prefix', 'first/', '--json'], env);

    expect(result.code, result.stderr).toBe(0);
    const rows = (JSON.parse(result.stdout) as { records: Row[] }).records;
    expect(rows.map((r) => [r.repository, r.status])).toEqual(repositories.map((r) => [r, 'synced']));
    expect(rows.find((r) => r.repository === 'first/stray')?.lastSync?.removed).toBe(1);
    for (const repository of repositories) expect(await readTags(S(), repository), repository).toEqual(await readTags(P(), repository));
  });

  it('a truncated primary listing holds the guard: recorded as guard-held (no retry), shown by status, exit 1; --max-prune 1 passes it', async () => {
    await pushImage(P(), 'trunc/app', 'v1');
    await pushImage(S(), 'trunc/app', 'v1');
    const extra = Array.from({ length: 10 }, (_, i) => `old-${i}`);
    for (const tag of extra) await pushImage(S(), 'trunc/app', tag, { seed: tag });

    const held = await runGeoSync(['run', '--repository', 'trunc/app'], env);
    const status = await runGeoSync(['status'], env);
    const rows = JSON.parse((await runGeoSync(['status', '--json'], env)).stdout) as Row[];

    expect(held.code, held.stderr).toBe(1);
    expect(held.stdout).toContain('prune guard held, nothing removed from: secondary/trunc/app');
    const row = rows.find((r) => r.repository === 'trunc/app')!;
    expect(row).toMatchObject({ status: 'guard-held', syncState: 'guard-held', retryCount: 0 });
    expect(row.syncError).toMatch(
      /^would remove 10 of 11 tags on the secondary, more than the prune limit 0\.5 of the 11 tags both sides hold together; removed none\. Check the primary's tag listing, then raise the prune limit \(maxPrune in a manual invoke, or geo-sync run --max-prune\)/,
    );
    expect(row).not.toHaveProperty('nextRetryAt');
    expect(status.stdout).toMatch(
      /trunc\/app\s+secondary\s+guard-held\s+\d+s ago: copied 0, repaired 0, removed 0\s+.*guard held(, mismatch)?\s+would remove 10 of 11 tags/,
    );
    expect(status.stdout).not.toMatch(/trunc\/app.*\(retry/);
    expect(Object.keys(await readTags(S(), 'trunc/app')).sort()).toEqual(['v1', ...extra].sort());

    const passed = await runGeoSync(['run', '--repository', 'trunc/app', '--max-prune', '1', '--json'], env);

    expect(passed.code, passed.stderr).toBe(0);
    expect((JSON.parse(passed.stdout) as { records: Row[] }).records).toMatchObject([{ repository: 'trunc/app', status: 'synced', lastSync: { removed: 10 } }]);
    expect(await readTags(S(), 'trunc/app')).toEqual(await readTags(P(), 'trunc/app'));
  });

  it.each([['2'], ['-0.1'], ['half']])('run --max-prune %s is a usage error (exit 2)', async (value) => {
    const result = await runGeoSync(['run', '--max-prune', value], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--max-prune must be a number from 0 to 1/);
  });
});
