// One repository of N tags, side by side with the peers: seed, then initial sync, no-op sync (as a
// process and in-process), requests per no-op (plain API and GitLab's tag API), incremental sync
// and verify.
import { performance } from 'node:perf_hooks';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { startGitlabApi } from '../test/support/gitlab-api.js';
import type { TestRegistry } from '../test/support/registry.js';
import { readTags } from '../test/support/seed.js';
import {
  REPOSITORY,
  config,
  countRequests,
  describe,
  expectOk,
  expectSame,
  expectSuperset,
  log,
  measured,
  profiled,
  registry,
  runOurs,
  runSequentialVerify,
  runSkopeoSync,
  seconds,
  type Sample,
} from './harness.js';
import { median } from './measure.js';
import type { ProfileSummary } from './profile.js';
import type { Row } from './report.js';
import { isMultiArch, moveTags, pushBaseLayer, pushExtraTags, seedRepository, tagName } from './seed.js';

const EXTRA_TAGS_PER_INCREMENT = 3;

/** One repository of `size` tags: seed, then initial, no-op, requests, incremental and verify, side by side. */
export async function benchSize(size: number, profiles: Record<string, ProfileSummary>): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  log(`== ${size} tags ==`);
  const primary = await registry();
  let t = performance.now();
  const base = await pushBaseLayer(primary.url, REPOSITORY, config.baseLayerKb * 1024);
  await seedRepository(primary.url, REPOSITORY, size, base);
  const seedSeconds = (performance.now() - t) / 1000;
  const multiArch = Array.from({ length: size }, (_, i) => i).filter(isMultiArch).length;
  log(`seeded ${REPOSITORY}: ${size} tags (${multiArch} multi-arch indexes, ${config.baseLayerKb} KiB shared base layer) in ${seedSeconds.toFixed(1)} s`);
  let truth = await readTags(primary.url, REPOSITORY);

  const pair = (secondary: TestRegistry) => [primary, secondary];
  const oursSync = (secondary: TestRegistry, url = secondary.url) =>
    runOurs(['sync', REPOSITORY, '--primary', primary.url, '--secondary', url, '--max-prune', '1', '--json']);
  const skopeo = (secondaryHost: string, primaryHost = primary.host) => runSkopeoSync(primaryHost, secondaryHost, REPOSITORY);

  // Initial sync: each repetition into fresh, empty secondaries; the last pair is kept.
  const initialReps = size > config.largeAbove ? config.initialRepsLarge : config.reps;
  const initial = { ours: [] as Sample[], skopeo: [] as Sample[] };
  let oursSecondary: TestRegistry | undefined;
  let skopeoSecondary: TestRegistry | undefined;
  for (let rep = 1; rep <= initialReps; rep++) {
    await oursSecondary?.stop();
    await skopeoSecondary?.stop();
    oursSecondary = await registry();
    skopeoSecondary = await registry();
    const ours = await measured(pair(oursSecondary), () => oursSync(oursSecondary!), 'geo-sync sync (initial)');
    initial.ours.push(ours);
    const peer = await measured(pair(skopeoSecondary), () => skopeo(skopeoSecondary!.host), 'skopeo sync (initial)');
    initial.skopeo.push(peer);
    log(`initial sync ${rep}/${initialReps}: ours ${describe(ours)} | skopeo ${describe(peer)}`);
  }
  await expectSame(oursSecondary!.url, truth, 'geo-sync initial sync');
  await expectSame(skopeoSecondary!.url, truth, 'skopeo initial sync');
  if (config.cpuProfile) {
    const fresh = await registry();
    profiles[`initial sync, ${size} tags`] = await profiled([
      'sync',
      REPOSITORY,
      '--primary',
      primary.url,
      '--secondary',
      fresh.url,
      '--max-prune',
      '1',
      '--json',
    ]);
    await fresh.stop();
  }

  // No-op sync: nothing changed.
  const noop = { ours: [] as Sample[], skopeo: [] as Sample[] };
  for (let rep = 1; rep <= config.reps; rep++) {
    const ours = await measured(pair(oursSecondary!), () => oursSync(oursSecondary!), 'geo-sync sync (no-op)');
    noop.ours.push(ours);
    const peer = await measured(pair(skopeoSecondary!), () => skopeo(skopeoSecondary!.host), 'skopeo sync (no-op)');
    noop.skopeo.push(peer);
    log(`no-op sync ${rep}/${config.reps}: ours ${describe(ours)} | skopeo ${describe(peer)}`);
  }
  if (config.cpuProfile)
    profiles[`no-op sync, ${size} tags`] = await profiled([
      'sync',
      REPOSITORY,
      '--primary',
      primary.url,
      '--secondary',
      oursSecondary!.url,
      '--max-prune',
      '1',
      '--json',
    ]);

  // The same no-op in-process (no process start), with the engine's own request counters.
  const inProcess: { wallMs: number; requests: number; writes: number }[] = [];
  for (let rep = 1; rep <= config.reps; rep++) {
    const p = new RegistryClient({ url: primary.url });
    const s = new RegistryClient({ url: oursSecondary!.url });
    t = performance.now();
    const report = await syncRepository(p, s, validateRepositoryName(REPOSITORY), { maxPrune: 1 });
    const wallMs = performance.now() - t;
    await Promise.all([p.close(), s.close()]);
    if (report.status !== 'synced') throw new Error(`in-process no-op sync: status ${report.status}`);
    inProcess.push({ wallMs, requests: p.stats.requests + s.stats.requests, writes: p.stats.writes + s.stats.writes });
  }
  log(
    `no-op sync in-process (engine, no process start): median ${seconds(median(inProcess.map((s) => s.wallMs)))}, ${inProcess[0]!.requests} requests, ${inProcess[0]!.writes} writes`,
  );

  // Requests on a no-op sync, counted by proxies in front of both registries.
  const floor = 2 * size + 2 * Math.ceil(size / 1000);
  const counted = {
    ours: await countRequests(primary.url, oursSecondary!.url, async (p, s) =>
      expectOk(await runOurs(['sync', REPOSITORY, '--primary', p.url, '--secondary', s.url, '--max-prune', '1', '--json']), 'geo-sync sync (counted)'),
    ),
    skopeo:
      size === config.sizes[0]
        ? await countRequests(primary.url, skopeoSecondary!.url, async (p, s) =>
            expectOk(await skopeo(new URL(s.url).host, new URL(p.url).host), 'skopeo sync (counted)'),
          )
        : undefined,
  };
  const skopeoCount = counted.skopeo
    ? `${counted.skopeo.total} (${(counted.skopeo.total / size).toFixed(2)}/tag; ${JSON.stringify(counted.skopeo.byMethod)})`
    : 'counted at the first size only';
  log(
    `no-op requests: ours ${counted.ours.total} (${(counted.ours.total / size).toFixed(3)}/tag; ${JSON.stringify(counted.ours.byMethod)}) | skopeo ${skopeoCount} | floor ${floor} (${(floor / size).toFixed(3)}/tag)`,
  );

  // The same no-op where both registries offer GitLab's tag list API (a stand-in that answers it from
  // the registry's state; only the requests our process sends are counted, not the stand-in's own).
  const gitlab = await Promise.all([startGitlabApi(primary.url), startGitlabApi(oursSecondary!.url)]);
  try {
    expectOk(
      await runOurs(['sync', REPOSITORY, '--primary', gitlab[0].url, '--secondary', gitlab[1].url, '--max-prune', '1', '--json']),
      'geo-sync sync (GitLab API)',
    );
  } finally {
    await Promise.all(gitlab.map((server) => server.stop()));
  }
  const gitlabRequests = gitlab.map((server) => Object.values(server.counts).reduce((a, b) => a + b, 0)).reduce((a, b) => a + b, 0);
  const gitlabByKind = gitlab.map((server) => server.counts);
  log(
    `no-op requests with GitLab's tag API on both sides: ${gitlabRequests} (${((gitlabRequests / size) * 1000).toFixed(1)} per 1,000 tags; ${JSON.stringify(gitlabByKind)})`,
  );

  // Incremental: 1% of the tags moved on the primary, a few extra tags on each secondary.
  const incremental = { ours: [] as Sample[], skopeo: [] as Sample[], moved: 0, extra: EXTRA_TAGS_PER_INCREMENT };
  const movedCount = Math.max(1, Math.round(size / 100));
  for (let rep = 1; rep <= config.reps; rep++) {
    const moved = Array.from({ length: movedCount }, (_, k) => tagName((rep * 7 + k * Math.floor(size / movedCount)) % size));
    const extras = Array.from({ length: EXTRA_TAGS_PER_INCREMENT }, (_, k) => `extra-${rep}-${k}`);
    await moveTags(primary.url, REPOSITORY, moved, base, `moved in increment ${rep}`);
    await Promise.all([pushExtraTags(oursSecondary!.url, REPOSITORY, extras), pushExtraTags(skopeoSecondary!.url, REPOSITORY, extras)]);
    truth = await readTags(primary.url, REPOSITORY);
    incremental.moved = moved.length;
    const ours = await measured(pair(oursSecondary!), () => oursSync(oursSecondary!), 'geo-sync sync (incremental)');
    incremental.ours.push(ours);
    const peer = await measured(pair(skopeoSecondary!), () => skopeo(skopeoSecondary!.host), 'skopeo sync (incremental)');
    incremental.skopeo.push(peer);
    log(`incremental sync ${rep}/${config.reps} (${moved.length} moved, ${extras.length} extra): ours ${describe(ours)} | skopeo ${describe(peer)}`);
    await expectSame(oursSecondary!.url, truth, 'geo-sync incremental sync');
    const left = await expectSuperset(skopeoSecondary!.url, truth, 'skopeo incremental sync');
    if (rep === config.reps) log(`after the incremental syncs skopeo's secondary still holds ${left} extra tags (skopeo never prunes); ours holds none`);
  }

  // Verify: ours against a one-request-at-a-time verifier, both as processes.
  const verify = { ours: [] as Sample[], sequential: [] as Sample[], sequentialRequests: 0 };
  for (let rep = 1; rep <= config.reps; rep++) {
    const ours = await measured(
      pair(oursSecondary!),
      () => runOurs(['verify', REPOSITORY, '--primary', primary.url, '--secondary', oursSecondary!.url, '--json']),
      'geo-sync verify',
    );
    verify.ours.push(ours);
    let output = '';
    const peer = await measured(
      pair(oursSecondary!),
      async () => {
        const result = await runSequentialVerify(primary.url, oursSecondary!.url, REPOSITORY);
        output = result.stdout;
        return result;
      },
      'sequential verify',
    );
    const parsed = JSON.parse(output) as { status: string; requests: number };
    if (parsed.status !== 'synced') throw new Error(`sequential verify says ${parsed.status}`);
    verify.sequentialRequests = parsed.requests;
    verify.sequential.push(peer);
    log(`verify ${rep}/${config.reps}: ours ${describe(ours)} | sequential ${describe(peer)}`);
  }
  if (config.cpuProfile)
    profiles[`verify, ${size} tags`] = await profiled(['verify', REPOSITORY, '--primary', primary.url, '--secondary', oursSecondary!.url, '--json']);

  await Promise.all([primary.stop(), oursSecondary!.stop(), skopeoSecondary!.stop()]);

  const wall = (samples: Sample[]) => median(samples.map((s) => s.wallMs)) / 1000;
  const compare = (measure: string, ours: Sample[], peer: Sample[], peerName: string, target?: number): Row => {
    const ratio = wall(ours) / wall(peer);
    return {
      size,
      measure,
      unit: 's',
      ours: wall(ours),
      peer: wall(peer),
      peerName,
      ratio,
      target: target === undefined ? '-' : `<= ${target}x`,
      ...(target === undefined ? {} : { meets: ratio <= target }),
    };
  };
  const perTag = counted.ours.total / size;
  const rows: Row[] = [
    compare('initial sync', initial.ours, initial.skopeo, 'skopeo', 0.25),
    compare('no-op sync', noop.ours, noop.skopeo, 'skopeo', 0.1),
    compare(`incremental (${movedCount} moved, ${EXTRA_TAGS_PER_INCREMENT} extra)`, incremental.ours, incremental.skopeo, 'skopeo (no prune)'),
    compare('verify', verify.ours, verify.sequential, 'sequential HEADs', 0.2),
    {
      size,
      measure: 'no-op requests per tag',
      unit: 'req/tag',
      ours: perTag,
      peer: floor / size,
      peerName: 'floor',
      ratio: counted.ours.total / floor,
      target: '<= 2.05/tag',
      meets: perTag <= 2.05,
    },
  ];
  const perThousand = (gitlabRequests / size) * 1000;
  rows.push({
    size,
    measure: "no-op requests per 1,000 tags, GitLab's tag API",
    unit: 'req/1000 tags',
    ours: perThousand,
    peer: (floor / size) * 1000,
    peerName: 'plain API floor',
    ratio: gitlabRequests / floor,
    ...(size >= 1000 ? { target: '<= 5/1000 tags', meets: perThousand <= 5 } : { target: '- (fixed probes dominate)' }),
  });
  if (counted.skopeo) {
    rows.push({
      size,
      measure: 'no-op requests per tag',
      unit: 'req/tag',
      ours: perTag,
      peer: counted.skopeo.total / size,
      peerName: 'skopeo',
      ratio: counted.ours.total / counted.skopeo.total,
      target: '-',
    });
  }
  return {
    rows,
    details: {
      seedSeconds,
      multiArch,
      initial,
      noop,
      noopInProcess: inProcess,
      requests: { ...counted, floor, gitlab: { total: gitlabRequests, byKind: gitlabByKind } },
      incremental,
      verify,
    },
  };
}
