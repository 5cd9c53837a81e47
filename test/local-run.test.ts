// Local mode: `geo-sync run` and `geo-sync status` over two real registries, with the embedded
// queue and the file store, through the same jobs as the Lambda functions.
import { Command } from 'commander';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerLocalCommands } from '../shared/cli/local-commands.js';
import { acquireRepositoryLock } from '../shared/local/lock.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, pushMultiArch, readTags } from './support/seed.js';

let registries: RegistryPair;
let stateDir: string;
const figures: string[] = [];
const BULK = Array.from({ length: 12 }, (_, i) => `bulk/repo-${String(i).padStart(2, '0')}`);
const REPOSITORIES = ['lib/base', 'lib/multi', 'web/backend', 'web/frontend', ...BULK];

beforeAll(async () => {
  registries = await startRegistryPair();
  stateDir = join(mkdtempSync(join(tmpdir(), 'geo-sync-state-')), 'state');
  const { primary, secondary } = registries;
  for (const url of [primary.url, secondary.url]) await pushImage(url, 'lib/base', '1.0');
  await pushMultiArch(primary.url, 'lib/multi', 'stable', 'docker');
  for (const tag of ['v1', 'v2', 'v3']) await pushImage(primary.url, 'web/frontend', tag);
  await pushImage(primary.url, 'web/backend', 'v1');
  await pushImage(secondary.url, 'web/backend', 'v1', { seed: 'stale' });
  await pushImage(secondary.url, 'web/backend', 'extra', { seed: 'extra' });
  for (const repository of BULK) {
    await pushImage(primary.url, repository, 'a');
    await pushImage(primary.url, repository, 'b');
  }
});

afterAll(async () => {
  await registries?.stop();
  if (stateDir) rmSync(join(stateDir, '..'), { recursive: true, force: true });
  if (figures.length > 0) console.info(figures.join('\n'));
});

/** Runs one local command in-process, as the main CLI will once it registers them. */
async function geoSync(...args: string[]): Promise<{ code: number; stdout: string }> {
  const env = { GEO_SYNC_PRIMARY_URL: registries.primary.url, GEO_SYNC_SECONDARY_URL: registries.secondary.url, GEO_SYNC_STATE_DIR: stateDir };
  const program = new Command('geo-sync').exitOverride();
  let code = -1;
  registerLocalCommands(program, { env, setExitCode: (c) => (code = c) });
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return { code, stdout: out.join('') };
}

describe('geo-sync run and status', () => {
  it('syncs and verifies every repository of the primary, and records each in the state directory', async () => {
    const started = performance.now();
    const { code, stdout } = await geoSync('run', '--json', '--workers', '4');
    const seconds = (performance.now() - started) / 1000;
    const summary = JSON.parse(stdout) as {
      repositories: number;
      messages: { sync: number; verify: number };
      records: { repository: string; status: string }[];
    };

    expect(code).toBe(0);
    expect(summary.repositories).toBe(REPOSITORIES.length);
    expect(summary.messages).toEqual({ sync: REPOSITORIES.length, verify: REPOSITORIES.length });
    expect(summary.records.every((r) => r.status === 'synced')).toBe(true);
    for (const repository of REPOSITORIES) {
      expect(await readTags(registries.secondary.url, repository), repository).toEqual(await readTags(registries.primary.url, repository));
    }
    expect(existsSync(join(stateDir, 'records'))).toBe(true);
    figures.push(
      `local run: ${summary.repositories} repositories, ${summary.messages.sync} sync + ${summary.messages.verify} verify messages, ${seconds.toFixed(2)} s`,
    );
  });

  it('status --json lists each repository with its recorded state, from disk', async () => {
    const { code, stdout } = await geoSync('status', '--json');
    const rows = JSON.parse(stdout) as {
      repository: string;
      secondary: string;
      status: string;
      syncState: string;
      verifyState: string;
      lastSync: { removed: number };
    }[];

    expect(code).toBe(0);
    expect(rows.map((r) => r.repository).sort()).toEqual([...REPOSITORIES].sort());
    expect(rows.every((r) => r.status === 'synced' && r.syncState === 'synced' && r.verifyState === 'synced' && r.secondary === 'secondary')).toBe(true);
    expect(rows.find((r) => r.repository === 'web/backend')?.lastSync.removed).toBe(1);
  });

  it('run --repository syncs only the named repository; a second run of a verified one writes nothing', async () => {
    await pushImage(registries.primary.url, 'web/frontend', 'v4');
    const first = JSON.parse((await geoSync('run', '--repository', 'web/frontend', '--json')).stdout) as { repositories: number; messages: { verify: number } };
    const again = JSON.parse((await geoSync('run', '--repository', 'web/frontend', '--repository', 'lib/base', '--json')).stdout) as {
      repositories: number;
      messages: { verify: number };
      records: { lastSync: { copied: number } }[];
    };

    expect(first).toMatchObject({ repositories: 1, messages: { verify: 1 } });
    expect(Object.keys(await readTags(registries.secondary.url, 'web/frontend'))).toContain('v4');
    expect(again).toMatchObject({ repositories: 2, messages: { verify: 0 } });
    expect(again.records.map((r) => r.lastSync.copied)).toEqual([0, 0]);
  });

  it('leaves alone a repository another geo-sync process is syncing (the CLI lock), exits 1, and takes it up once free', async () => {
    await pushImage(registries.primary.url, 'lib/base', '1.1');
    // Held as `geo-sync sync lib/base` would hold it (this test process is the live holder).
    const unlock = acquireRepositoryLock(new URL(registries.secondary.url).host, 'lib/base');
    let busy: { code: number; stdout: string };
    try {
      busy = await geoSync('run', '--repository', 'lib/base', '--repository', 'lib/multi', '--json');
    } finally {
      unlock();
    }
    expect(busy.code).toBe(1);
    expect((JSON.parse(busy.stdout) as { busy: string[] }).busy).toEqual(['secondary/lib/base']);
    expect(Object.keys(await readTags(registries.secondary.url, 'lib/base'))).not.toContain('1.1');

    const free = await geoSync('run', '--repository', 'lib/base');
    expect(free.code).toBe(0);
    expect(await readTags(registries.secondary.url, 'lib/base')).toEqual(await readTags(registries.primary.url, 'lib/base'));
  });

  it('a repository that cannot be synced is recorded as failed with a retry time, and the run exits 3', async () => {
    const { code, stdout } = await geoSync('run', '--repository', 'gone/app');
    const status = await geoSync('status');

    expect(code).toBe(3);
    expect(stdout).toContain('gone/app');
    expect(status.stdout).toMatch(/gone\/app\s+secondary\s+failed\s+.*does not exist on the primary.*\(retry 1 at /);
    expect(status.stdout).toMatch(/web\/frontend\s+secondary\s+synced/);
  });
});
