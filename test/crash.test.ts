import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELETE_PROBE_DIGEST } from '../shared/engine/registry/client.js';
import { THROWAWAY_ANNOTATION } from '../shared/engine/sync/tag-removal.js';
import { spawnGeoSync, runGeoSync } from './support/cli.js';
import { seededRandom, startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { getManifest, pushImage, pushMultiArch, readTags } from './support/seed.js';
import { storedThrowaways } from './support/soak.js';

let registries: RegistryPair;
let proxy: FaultProxy;

beforeAll(async () => {
  registries = await startRegistryPair();
  proxy = await startFaultProxy(registries.secondary.url);
});
afterAll(async () => {
  await proxy?.stop();
  await registries?.stop();
});

const P = () => registries.primary.url;
const S = () => registries.secondary.url;

/** Tags of the secondary that point at one of our throwaway manifests. */
async function throwawayTags(repo: string): Promise<string[]> {
  const found: string[] = [];
  for (const tag of Object.keys(await readTags(S(), repo))) {
    const manifest = await getManifest(S(), repo, tag);
    const annotations = (JSON.parse(Buffer.from(manifest!.bytes).toString('utf8')) as { annotations?: Record<string, string> }).annotations;
    if (annotations?.[THROWAWAY_ANNOTATION]) found.push(tag);
  }
  return found;
}

describe('a sync killed at any point converges on the next run', () => {
  /** Syncs `repo` and SIGKILLs the CLI exactly between "tag -> throwaway" and "delete it". */
  async function killInThrowawayWindow(repo: string): Promise<void> {
    let killed = false;
    const run = spawnGeoSync(['sync', repo, '--primary', P(), '--secondary', proxy.url, '--max-prune', '1']);
    proxy.setRule(({ method, path }) => {
      if (method === 'DELETE' && path.includes('/manifests/sha256:') && !path.endsWith(DELETE_PROBE_DIGEST) && !killed) {
        killed = true;
        run.child.kill('SIGKILL');
        // The DELETE never reaches the registry: the crash lands exactly between the two steps.
        return { kind: 'status', status: 503 };
      }
      return undefined;
    });
    const result = await run.done;
    proxy.setRule(() => undefined);
    expect(killed).toBe(true);
    expect(result.code).not.toBe(0);
  }

  it('killed between "point the tag at a throwaway" and "delete it": the next sync cleans up', async () => {
    const repo = 'crash/throwaway';
    await pushImage(P(), repo, 'keep');
    await pushImage(S(), repo, 'keep');
    await pushImage(S(), repo, 'extra');
    await killInThrowawayWindow(repo);
    expect(await throwawayTags(repo)).toEqual(['extra']);

    const again = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S(), '--max-prune', '1']);

    expect(again.code).toBe(0);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    expect(await throwawayTags(repo)).toEqual([]);
    // The leftover itself was deleted, not merely untagged by yet another throwaway.
    expect(storedThrowaways(registries.secondary.root, repo)).toBe(0);
  });

  it('killed in the throwaway window, then the primary gains that tag: the repair deletes the leftover throwaway', async () => {
    const repo = 'crash/throwaway-regained';
    await pushImage(P(), repo, 'keep');
    await pushImage(S(), repo, 'keep');
    await pushImage(S(), repo, 'back');
    await killInThrowawayWindow(repo);
    expect(await throwawayTags(repo)).toEqual(['back']);
    const regained = await pushImage(P(), repo, 'back', { seed: 'regained' });

    const again = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S(), '--json']);

    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).done.repaired).toEqual(['back']);
    expect((await readTags(S(), repo)).back).toBe(regained.digest);
    expect(storedThrowaways(registries.secondary.root, repo)).toBe(0);
  });

  it('killed at random points of copies, repairs and removals, repeatedly', async () => {
    const repo = 'crash/random';
    for (let i = 0; i < 12; i++) await pushImage(P(), repo, `v${i}`);
    await pushMultiArch(P(), repo, 'multi', 'docker');
    for (let i = 0; i < 6; i++) await pushImage(S(), repo, `v${i}`, { seed: 'stale' });
    for (let i = 0; i < 6; i++) await pushImage(S(), repo, `old${i}`);
    const random = seededRandom(42);
    let kills = 0;
    for (let round = 0; round < 6; round++) {
      const run = spawnGeoSync(['sync', repo, '--primary', P(), '--secondary', S(), '--max-prune', '1', '--concurrency', '2']);
      const delay = 150 + Math.floor(random() * 400);
      const timer = setTimeout(() => run.child.kill('SIGKILL') && kills++, delay);
      await run.done;
      clearTimeout(timer);
    }
    const final = await runGeoSync(['sync', repo, '--primary', P(), '--secondary', S(), '--max-prune', '1']);
    expect(final.code).toBe(0);
    expect(await readTags(S(), repo)).toEqual(await readTags(P(), repo));
    expect(await throwawayTags(repo)).toEqual([]);
    const verify = await runGeoSync(['verify', repo, '--deep', '--primary', P(), '--secondary', S()]);
    expect(verify.code).toBe(0);
    expect(kills).toBeGreaterThan(0);
  });
});
