// `geo-sync ready` through the real binary, over real registries: a primary and two secondaries,
// synced and verified by `geo-sync run`, then made not ready in the ways an operator meets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Readiness } from '../shared/jobs/index.js';
import { runGeoSync } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage } from './support/seed.js';

let primary: TestRegistry;
let east: TestRegistry;
let west: TestRegistry;
let stateDir: string;
const printed: string[] = [];

beforeAll(async () => {
  [primary, east, west] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  stateDir = join(mkdtempSync(join(tmpdir(), 'geo-sync-ready-')), 'state');
  for (const repository of ['app/api', 'app/web', 'lib/base']) await pushImage(primary.url, repository, 'v1');
});

afterAll(async () => {
  await Promise.all([primary, east, west].map((registry) => registry?.stop()));
  if (stateDir) rmSync(join(stateDir, '..'), { recursive: true, force: true });
  if (printed.length > 0) console.info(printed.join('\n\n'));
});

function geoSync(...args: string[]) {
  return geoSyncWith(primary.url, ...args);
}

function geoSyncWith(primaryUrl: string, ...args: string[]) {
  return runGeoSync(args, {
    GEO_SYNC_PRIMARY_URL: primaryUrl,
    GEO_SYNC_SECONDARIES: JSON.stringify([
      { name: 'east', url: east.url },
      { name: 'west', url: west.url },
    ]),
    GEO_SYNC_STATE_DIR: stateDir,
  });
}

describe('geo-sync ready', () => {
  it('cannot tell from an empty state directory offline: exit 3, each secondary unknown', async () => {
    const { code, stdout } = await geoSync('ready', '--offline');
    expect(code).toBe(3);
    expect(stdout).toMatch(/^UNKNOWN\s+east: 0 repositories/m);
    expect(stdout).toContain('as the local records know them (offline');
  });

  it('is ready once run has synced and verified every repository: exit 0, one line per secondary', async () => {
    expect((await geoSync('run')).code).toBe(0);
    const { code, stdout } = await geoSync('ready');
    printed.push(`$ geo-sync ready   # exit ${code}\n${stdout.trimEnd()}`);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^READY\s+east: 3 repositories: 3 verified synced within 25h, 0 mismatched, 0 failed, 0 waiting for a human, 0 never verified; oldest verification \d+s ago/m,
    );
    expect(stdout).toMatch(/^READY\s+west: 3 repositories/m);
    expect(stdout).toContain("as the primary's catalog lists them now");
  });

  it('--json: the counts, the oldest verification, the lag basis and what keeps each secondary from ready', async () => {
    const { code, stdout } = await geoSync('ready', '--json', '--secondary', 'east', '--max-age', '90m');
    const report = JSON.parse(stdout) as Readiness;
    expect(code).toBe(0);
    expect(report).toMatchObject({ exitCode: 0, source: 'primary', maxAgeSeconds: 5400 });
    expect(report.secondaries).toHaveLength(1);
    expect(report.secondaries[0]).toMatchObject({
      secondary: 'east',
      status: 'ready',
      repositories: 3,
      counts: { ready: 3, mismatch: 0, failed: 0, 'needs-human': 0, 'never-verified': 0, unverified: 0, stale: 0 },
      lag: { basis: 'last event job per repository, finished within the window', events: 0 },
      notReady: [],
    });
    expect(Date.parse(report.secondaries[0]!.oldestVerifiedAt!)).toBeLessThanOrEqual(Date.now());
  });

  it('a repository the primary lists but nobody verified keeps every secondary from ready (exit 1, named); offline, the records do not know it', async () => {
    await pushImage(primary.url, 'app/new', 'v1');
    const { code, stdout } = await geoSync('ready');
    printed.push(`$ geo-sync ready   # exit ${code}\n${stdout.trimEnd()}`);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^NOT READY\s+east: 4 repositories: 3 verified synced within 25h, .*1 never verified/m);
    expect(stdout).toContain('  app/new: never-verified: never synced nor verified');

    const offline = await geoSync('ready', '--offline');
    expect(offline.code).toBe(0);
    expect(offline.stdout).toMatch(/^READY\s+east: 3 repositories/m);
  });

  it('an extra tag on one secondary, held by the prune guard, waits for a human: that secondary first, the repository named', async () => {
    await pushImage(west.url, 'app/api', 'rogue', { seed: 'rogue' });
    expect((await geoSync('run', '--max-prune', '0')).code).toBe(1);
    const { code, stdout } = await geoSync('ready');
    printed.push(`$ geo-sync ready   # exit ${code}\n${stdout.trimEnd()}`);
    const lines = stdout.trimEnd().split('\n');
    expect(code).toBe(1);
    expect(lines[0]).toMatch(
      /^NOT READY\s+west: 4 repositories: 3 verified synced within 25h, 0 mismatched, 0 failed, 1 waiting for a human, 0 never verified/,
    );
    expect(lines[1]).toMatch(/^ {2}app\/api: needs-human: guard-held: /);
    expect(lines[2]).toMatch(/^READY\s+east: 4 repositories/);
  });

  it('a primary that cannot be listed: told from the records, and said so', async () => {
    const { code, stdout } = await geoSyncWith('http://127.0.0.1:1', 'ready');
    expect(code).toBe(1);
    expect(stdout).toMatch(/^NOT READY\s+west: 4 repositories/m);
    expect(stdout).toMatch(/^repositories in scope: as the local records know them \(the primary could not be listed \(.+\)\)$/m);
  });

  it('--max-age takes 90m, 25h or 2d; anything else is a usage error (exit 2)', async () => {
    for (const bad of ['25', '1w', '0h', 'soon']) {
      const { code, stderr } = await geoSync('ready', '--max-age', bad);
      expect(code, bad).toBe(2);
      expect(stderr).toContain('--max-age must be a whole number of minutes, hours or days, as 90m, 25h or 2d');
    }
    expect((await geoSync('ready', '--max-age', '2d', '--secondary', 'east')).code).toBe(0);
  });
});
