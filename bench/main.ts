// `npm run bench`: geo-sync side by side with skopeo sync and a sequential verifier, against real
// docker-registry processes on loopback. Prints each phase as it goes, then a table of medians
// and ratios (ours / peer); writes bench/results.json. See bench/README-fragment.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { startFaultProxy, type FaultProxy } from '../test/support/fault-proxy.js';
import { startGitlabApi } from '../test/support/gitlab-api.js';
import { startRegistry, type TestRegistry } from '../test/support/registry.js';
import { MediaType, pushBlob, pushBlobStream, pushManifest, readTags } from '../test/support/seed.js';
import { benchEvents } from './events.js';
import { measureFanOutEnqueueRate, type FanOutFigure } from './fan-out-hook.js';
import { median, processCpuMs, registryPid, runTimed, type Timed } from './measure.js';
import { summariseProfile, type ProfileSummary } from './profile.js';
import { benchLatency, formatCostTable, formatLatencyTable, parseRoundTrips } from './latency.js';
import { isMultiArch, moveTags, pushBaseLayer, pushExtraTags, seedRepository, tagName } from './seed.js';
import { sequentialVerify } from './sequential-verify.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
/** The geo-sync bundle measured; BENCH_CLI points at another build to compare an engine change (A/B). */
const CLI = process.env.BENCH_CLI ?? join(ROOT, 'dist', 'cli.mjs');
const RSS_PROBE = join(ROOT, 'test', 'support', 'report-rss.mjs');
const RESULTS = join(ROOT, 'bench', 'results.json');
const FAN_OUT_BUNDLE = join(ROOT, 'dist', 'bench-fan-out.mjs');
const SERVERLESS_YML = join(ROOT, 'serverless.yml');
/**
 * `--rtt 0,25,80@200` or BENCH_RTT: the speed-across-regions rows alone (bench/latency.ts). Without
 * `--`, npm keeps the flag for itself: `npm run bench --rtt=25` arrives as npm_config_rtt, and
 * `npm run bench --rtt 25` as npm_config_rtt=true with the value as the first argument.
 */
const ROUND_TRIPS = optionValue('--rtt') ?? process.env.BENCH_RTT ?? npmRttFlag();

function npmRttFlag(): string | undefined {
  const flag = process.env.npm_config_rtt;
  if (flag === undefined || flag === '' || flag === 'false') return undefined;
  return flag === 'true' ? process.argv.slice(2).find((arg) => !arg.startsWith('-')) : flag;
}

const REPOSITORY = 'bench/app';
const BIG_REPOSITORY = 'bench/big';
/** `skopeo sync` (without --scoped) puts SOURCE's last path element under DESTINATION: <dest>/bench + app = bench/app. */
const SKOPEO_DESTINATION_NAMESPACE = 'bench';
const EXTRA_TAGS_PER_INCREMENT = 3;

const config = {
  sizes: intList(process.env.BENCH_SIZES ?? '200,2000'),
  reps: int(process.env.BENCH_REPS, 3),
  /** Initial syncs need fresh secondaries and are the slowest phase; fewer repetitions above this size. */
  initialRepsLarge: int(process.env.BENCH_INITIAL_REPS_LARGE, 1),
  largeAbove: 1000,
  baseLayerKb: int(process.env.BENCH_BASE_LAYER_KB, 1024),
  bigLayerMb: int(process.env.BENCH_LAYER_MB, 1024),
  fanOutRepositories: int(process.env.BENCH_FAN_OUT_REPOSITORIES, 5000),
  cpuProfile: process.env.BENCH_CPU_PROF,
  /**
   * The registries run with the blob descriptor cache of Debian's shipped config
   * (/etc/docker/registry/config.yml); the test harness turns it off for tests that inspect state
   * right after deletes. BENCH_REGISTRY_CACHE=none runs them as the tests do.
   */
  registryCache: process.env.BENCH_REGISTRY_CACHE ?? 'inmemory',
  /** skopeo's request count per tag does not depend on the size; counted at the first size only. */
  countSkopeoRequests: 'first size',
};

interface Sample {
  wallMs: number;
  cpuMs?: number;
  maxRssKb?: number;
  /** CPU the registries (both sides) spent during the run. */
  registryCpuMs?: number;
}

interface Row {
  size: number | 'all';
  measure: string;
  unit: string;
  ours: number;
  peer?: number;
  peerName: string;
  /** ours / peer. */
  ratio?: number;
  target: string;
  meets?: boolean;
}

const tmp = mkdtempSync(join(tmpdir(), 'geo-sync-bench-'));
const live = new Set<{ stop(): Promise<void> }>();
let statsFiles = 0;

if (process.argv[2] === 'sequential-verify') {
  const [primary, secondary, repository] = process.argv.slice(3);
  process.stdout.write(`${JSON.stringify(await sequentialVerify(primary!, secondary!, repository!))}\n`);
  rmSync(tmp, { recursive: true, force: true });
} else {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
  }
  try {
    await (ROUND_TRIPS === undefined ? runBench() : runLatencyBench(ROUND_TRIPS));
  } finally {
    await cleanUp();
  }
}

async function runBench(): Promise<void> {
  const started = performance.now();
  const environment = describeEnvironment();
  log(
    `geo-sync benchmark: sizes ${config.sizes.join(', ')} tags, ${config.reps} repetitions (initial sync: ${config.reps} up to ${config.largeAbove} tags, ${config.initialRepsLarge} above)`,
  );
  log(`${environment.node}, ${environment.skopeo}, ${environment.registry} (blob descriptor cache: ${config.registryCache}), ${environment.cores} cores`);
  log(
    `ours = the geo-sync CLI binary (node ${CLI}), one process per run, default --concurrency 64, in-flight limit starting at 16; peers run as processes too`,
  );

  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  const profiles: Record<string, ProfileSummary> = {};

  const startup: Sample[] = [];
  for (let i = 0; i < 5; i++) startup.push(sample(expectOk(await runOurs(['--help']), 'geo-sync --help')));
  log(`CLI process start (geo-sync --help): median ${seconds(median(startup.map((s) => s.wallMs)))}`);
  details.cliStartup = startup;

  // The event path (geo-sync listen): latency from push to replicated, requests per pushed tag.
  // BENCH_ONLY=events runs these rows alone (and writes no results file); BENCH_EVENTS=skip leaves them out.
  if (process.env.BENCH_EVENTS !== 'skip') {
    const eventSizes = process.env.BENCH_EVENT_SIZES ? intList(process.env.BENCH_EVENT_SIZES) : [10, 1000, 10000];
    const events = await benchEvents({
      cli: CLI,
      registryEnv: config.registryCache === 'none' ? {} : { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: config.registryCache },
      sizes: eventSizes,
      log,
    });
    rows.push(...events.rows);
    details.events = events.details;
  }
  if (process.env.BENCH_ONLY === 'events') {
    process.stdout.write(`\n${formatTable(rows)}\n`);
    log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return;
  }

  for (const size of config.sizes) {
    const result = await benchSize(size, profiles);
    rows.push(...result.rows);
    details[`size${size}`] = result.details;
  }

  const big = await benchBigLayer(config.bigLayerMb, profiles);
  rows.push(...big.rows);
  details.bigLayer = big.details;

  log(`== fan-out (the AWS side's figure) ==`);
  const fanOut: FanOutFigure = await measureFanOutEnqueueRate(FAN_OUT_BUNDLE, {
    repositories: config.fanOutRepositories,
    secondaries: 2,
    reps: config.reps,
  }).catch((error: unknown) => ({ skipped: `failed: ${error instanceof Error ? error.message : String(error)}` }));
  if ('skipped' in fanOut) {
    log(`fan-out enqueue rate: SKIPPED (${fanOut.skipped})`);
  } else {
    log(`fan-out enqueue rate: ${Math.round(fanOut.messagesPerSecond)} messages/s (${fanOut.messages} messages, median of ${fanOut.samplesMs.length})`);
    rows.push({
      size: 'all',
      measure: `fan-out enqueue (${fanOut.messages} msgs)`,
      unit: 'msg/s',
      ours: fanOut.messagesPerSecond,
      peerName: '-',
      target: '>= 2000 msg/s',
      meets: fanOut.messagesPerSecond >= 2000,
    });
  }
  details.fanOut = fanOut;

  const totalSeconds = (performance.now() - started) / 1000;
  process.stdout.write(`\n${formatTable(rows)}\n`);
  log(`total ${totalSeconds.toFixed(0)} s`);
  if (Object.keys(profiles).length > 0) {
    for (const [name, summary] of Object.entries(profiles)) process.stdout.write(`\n${formatProfile(name, summary)}`);
  }

  const results = {
    generatedAt: new Date().toISOString(),
    command: `BENCH_SIZES=${config.sizes.join(',')} npm run bench`,
    environment,
    config: { ...config, cli: CLI },
    totalSeconds,
    notes: [
      'ours = the geo-sync CLI binary (node dist/cli.mjs), one process per run, default --concurrency 64, in-flight limit starting at 16',
      'skopeo: skopeo sync --all --preserve-digests --src docker --dest docker --src-tls-verify=false --dest-tls-verify=false <primary>/bench/app <secondary>/bench',
      'skopeo never prunes: after an incremental sync the extra tags stay on its secondary (ours removes them)',
      'sequential verifier: list both sides, then one HEAD per tag per side, one request at a time, run as a node process',
      'requests floor: one HEAD per tag per side plus one listing page per 1,000 tags per side',
      "registries: docker-registry with the blob descriptor cache of Debian's shipped config (BENCH_REGISTRY_CACHE=none: as the tests run them)",
      'ratios are ours / peer; medians of the repetitions',
    ],
    rows,
    details,
    profiles,
  };
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${RESULTS}`);
}

/**
 * Initial sync, no-op sync and verify with every registry behind a delaying proxy, side by side;
 * the rows and the Lambda cost table go into results.json under `latency`, the rest is kept.
 */
async function runLatencyBench(raw: string): Promise<void> {
  const started = performance.now();
  const roundTrips = parseRoundTrips(raw);
  const sizes = process.env.BENCH_SIZES ? config.sizes : [500, 200];
  const peerRepsFar = int(process.env.BENCH_PEER_REPS_FAR, 1);
  const environment = describeEnvironment();
  log(
    `geo-sync across regions: ${sizes.join(', ')} tags at +${raw} ms round trip, ours ${config.reps}x, peers ${config.reps}x at 0 ms and ${peerRepsFar}x above`,
  );
  log(`${environment.node}, ${environment.skopeo}, ${environment.registry} (blob descriptor cache: ${config.registryCache}), ${environment.cores} cores`);
  const latency = await benchLatency(
    {
      registry,
      runOurs: (args) => runOurs(args),
      runSkopeo: (primaryHost, secondaryHost) => runSkopeoSync(primaryHost, secondaryHost, REPOSITORY),
      runSequentialVerify: async (primaryUrl, secondaryUrl) => {
        const result = await runTimed(process.execPath, [SELF, 'sequential-verify', primaryUrl, secondaryUrl, REPOSITORY], { statsFile: nextStatsFile() });
        if (result.code === 0 && (JSON.parse(result.stdout) as { status: string }).status !== 'synced') throw new Error(`sequential verify: ${result.stdout}`);
        return result;
      },
      measured,
      seed: async (primary, size) => {
        const t = performance.now();
        const base = await pushBaseLayer(primary.url, REPOSITORY, config.baseLayerKb * 1024);
        await seedRepository(primary.url, REPOSITORY, size, base);
        log(`seeded ${REPOSITORY}: ${size} tags in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      },
      repository: REPOSITORY,
      log,
    },
    { sizes, roundTrips, reps: config.reps, peerRepsFar, serverlessYml: SERVERLESS_YML },
  );
  const totalSeconds = (performance.now() - started) / 1000;
  process.stdout.write(`\n${formatLatencyTable(latency.rows)}\n`);
  for (const e of latency.extra) process.stdout.write(`${e.size} tags: ${e.measure} = ${e.value.toFixed(2)}x (goal ${e.goal}: ${e.meets ? 'yes' : 'NO'})\n`);
  process.stdout.write(
    `\nLambda cost (serverless.yml: sync ${latency.memoryMb.sync} MB, verify ${latency.memoryMb.verify} MB)\n${formatCostTable(latency.cost, latency.memoryMb)}\n`,
  );
  log(`total ${totalSeconds.toFixed(0)} s`);

  const previous = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, unknown>) : {};
  previous.latency = {
    generatedAt: new Date().toISOString(),
    command: `BENCH_SIZES=${sizes.join(',')} BENCH_REPS=${config.reps} npm run bench -- --rtt ${raw}`,
    environment,
    config: { sizes, roundTrips, reps: config.reps, peerRepsFar, registryCache: config.registryCache, cli: CLI },
    totalSeconds,
    notes: [
      'every registry behind a delaying proxy (test/support/delay-proxy.ts, a TCP relay) that holds each byte sent to the registry MS before passing it on: each round trip takes MS longer, all of it on the way there; answers come back at once; at 0 ms no proxy',
      'ours, skopeo and the sequential verifier all go through the same proxies; the registries are read back directly to check each initial sync',
      `ours = the geo-sync CLI binary, one process per run, default --concurrency (64: the ceiling; the in-flight limit starts at 16); ${config.reps} runs, medians`,
      `peers: ${config.reps} runs at 0 ms, ${peerRepsFar} above (skopeo takes minutes per run there); medians`,
      "limit: the in-flight limit of ours' last run, per registry (primary/secondary): the highest it reached and where it ended",
      `Lambda cost: GB-seconds = the run's wall time (the CLI's process start included, so a warm Lambda pays a little less) x the function's memory in serverless.yml (sync ${latency.memoryMb.sync} MB, verify ${latency.memoryMb.verify} MB), per 1,000 tags`,
      'goals (issue 14) at 500 tags: 25 ms initial <= 0.03x skopeo, no-op <= 0.02x, verify <= 0.03x sequential; 0 ms no worse than before (0.33x / 0.26x / 0.56x); no-op at 25 ms <= 1.3x the no-op at 0 ms',
    ],
    rows: latency.rows,
    farNoop: latency.extra,
    lambdaCost: { memoryMb: latency.memoryMb, perThousandTags: latency.cost },
  };
  writeFileSync(RESULTS, `${JSON.stringify(previous, null, 2)}\n`);
  log(`wrote ${RESULTS} (latency)`);
}

/** One repository of `size` tags: seed, then initial, no-op, requests, incremental and verify, side by side. */
async function benchSize(size: number, profiles: Record<string, ProfileSummary>): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
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
    inProcess.push({ wallMs, requests: p.transport.stats.requests + s.transport.stats.requests, writes: p.transport.stats.writes + s.transport.stats.writes });
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
        const result = await runTimed(process.execPath, [SELF, 'sequential-verify', primary.url, oursSecondary!.url, REPOSITORY], {
          statsFile: nextStatsFile(),
        });
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

/** Peak memory (and time) copying one image whose layer is `megabytes` MiB: ours vs skopeo. */
async function benchBigLayer(megabytes: number, profiles: Record<string, ProfileSummary>): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  log(`== one ${megabytes} MiB layer ==`);
  const primary = await registry();
  const t = performance.now();
  const size = megabytes * 1024 * 1024;
  const layerDigest = await pushBlobStream(primary.url, BIG_REPOSITORY, size, 'bench big layer');
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
  const configDigest = await pushBlob(primary.url, BIG_REPOSITORY, configBytes);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
    layers: [{ mediaType: MediaType.ociLayer, digest: layerDigest, size }],
  });
  await pushManifest(primary.url, BIG_REPOSITORY, 'big', manifest, MediaType.ociManifest);
  log(`seeded ${BIG_REPOSITORY}:big in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const truth = await readTags(primary.url, BIG_REPOSITORY);

  const oursSecondary = await registry();
  let probeRssKb: number | undefined;
  const ours = await measured(
    [primary, oursSecondary],
    async () => {
      const result = await runOurs(['sync', BIG_REPOSITORY, '--primary', primary.url, '--secondary', oursSecondary.url, '--json'], { rss: true });
      probeRssKb = Number(/^peak-rss-kb=(\d+)$/m.exec(result.stderr)?.[1] ?? Number.NaN);
      return result;
    },
    'geo-sync sync (big layer)',
  );
  await expectSame(oursSecondary.url, truth, 'geo-sync big-layer sync', BIG_REPOSITORY);
  await oursSecondary.stop();
  if (config.cpuProfile) {
    const fresh = await registry();
    profiles[`copy ${megabytes} MiB layer`] = await profiled(['sync', BIG_REPOSITORY, '--primary', primary.url, '--secondary', fresh.url, '--json']);
    await fresh.stop();
  }

  const skopeoSecondary = await registry();
  const peer = await measured([primary, skopeoSecondary], () => runSkopeoSync(primary.host, skopeoSecondary.host, BIG_REPOSITORY), 'skopeo sync (big layer)');
  await expectSame(skopeoSecondary.url, truth, 'skopeo big-layer sync', BIG_REPOSITORY);
  await Promise.all([primary.stop(), skopeoSecondary.stop()]);

  const oursMb = (probeRssKb ?? ours.maxRssKb ?? Number.NaN) / 1024;
  const peerMb = (peer.maxRssKb ?? Number.NaN) / 1024;
  log(
    `${megabytes} MiB layer: ours ${describe(ours)}, peak RSS ${oursMb.toFixed(0)} MB (process's own maxRSS; /usr/bin/time says ${((ours.maxRssKb ?? 0) / 1024).toFixed(0)} MB) | skopeo ${describe(peer)}, peak RSS ${peerMb.toFixed(0)} MB`,
  );
  return {
    rows: [
      {
        size: 'all',
        measure: `peak RSS copying ${megabytes} MiB layer`,
        unit: 'MB',
        ours: oursMb,
        peer: peerMb,
        peerName: 'skopeo',
        ratio: oursMb / peerMb,
        target: '< 256 MB',
        meets: oursMb < 256,
      },
      {
        size: 'all',
        measure: `time copying ${megabytes} MiB layer`,
        unit: 's',
        ours: ours.wallMs / 1000,
        peer: peer.wallMs / 1000,
        peerName: 'skopeo',
        ratio: ours.wallMs / peer.wallMs,
        target: '-',
      },
    ],
    details: { megabytes, ours: { ...ours, probeRssKb }, skopeo: peer },
  };
}

// ---------------------------------------------------------------------------------------------

async function registry(): Promise<TestRegistry> {
  const cache: Record<string, string> = config.registryCache === 'none' ? {} : { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: config.registryCache };
  const started = await startRegistry({ env: cache });
  const tracked = { stop: () => started.stop() };
  live.add(tracked);
  return {
    ...started,
    stop: async () => {
      live.delete(tracked);
      await started.stop();
    },
  };
}

async function cleanUp(): Promise<void> {
  await Promise.allSettled([...live].map((resource) => resource.stop()));
  live.clear();
  rmSync(tmp, { recursive: true, force: true });
}

function runOurs(args: string[], options: { rss?: boolean; nodeOptions?: string[] } = {}): Promise<Timed> {
  const nodeArgs = [...(options.rss ? ['--import', RSS_PROBE] : []), ...(options.nodeOptions ?? [])];
  // A clean environment, as a user's shell would give: no GEO_SYNC_* leaking in.
  return runTimed(process.execPath, [...nodeArgs, CLI, ...args], { env: { PATH: process.env.PATH ?? '', TMPDIR: tmp }, statsFile: nextStatsFile() });
}

function runSkopeoSync(primaryHost: string, secondaryHost: string, repository: string): Promise<Timed> {
  const home = join(tmp, 'skopeo-home');
  mkdirSync(home, { recursive: true });
  const args = ['sync', '--all', '--preserve-digests', '--src', 'docker', '--dest', 'docker', '--src-tls-verify=false', '--dest-tls-verify=false'];
  return runTimed('skopeo', [...args, `${primaryHost}/${repository}`, `${secondaryHost}/${SKOPEO_DESTINATION_NAMESPACE}`], {
    env: { PATH: process.env.PATH ?? '', HOME: home, TMPDIR: tmp },
    statsFile: nextStatsFile(),
  });
}

/** Runs `work`, checks it exited 0, and adds the registries' CPU during it. */
async function measured(registries: TestRegistry[], work: () => Promise<Timed>, what: string): Promise<Sample> {
  const pids = registries.map((r) => registryPid(r.root));
  const before = pids.map(processCpuMs);
  const result = expectOk(await work(), what);
  const after = pids.map(processCpuMs);
  const deltas = after.map((a, i) => (a === undefined || before[i] === undefined ? undefined : a - before[i]!));
  const s = sample(result);
  if (deltas.every((d) => d !== undefined)) s.registryCpuMs = deltas.reduce((sum, d) => sum! + d!, 0);
  return s;
}

function sample(result: Timed): Sample {
  return {
    wallMs: result.wallMs,
    ...(result.cpuMs !== undefined ? { cpuMs: result.cpuMs } : {}),
    ...(result.maxRssKb !== undefined ? { maxRssKb: result.maxRssKb } : {}),
  };
}

function expectOk(result: Timed, what: string): Timed {
  if (result.code !== 0) {
    throw new Error(`${what} exited ${result.code}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-4000)}`);
  }
  return result;
}

/** Counts every request `work` sends through counting proxies (no faults) in front of both registries. */
async function countRequests(primaryUrl: string, secondaryUrl: string, work: (primary: FaultProxy, secondary: FaultProxy) => Promise<unknown>) {
  const [p, s] = await Promise.all([startFaultProxy(primaryUrl), startFaultProxy(secondaryUrl)]);
  try {
    await work(p, s);
    const byMethod: Record<string, number> = {};
    for (const entry of [...p.log, ...s.log]) byMethod[entry.method] = (byMethod[entry.method] ?? 0) + 1;
    return { total: p.stats.requests + s.stats.requests, primary: p.stats.requests, secondary: s.stats.requests, byMethod };
  } finally {
    await Promise.all([p.stop(), s.stop()]);
  }
}

/** One extra run of ours under --cpu-prof (never a timed run), summarised. */
async function profiled(args: string[]): Promise<ProfileSummary> {
  const dir = join(typeof config.cpuProfile === 'string' && config.cpuProfile !== '1' ? config.cpuProfile : join(tmp, 'profiles'), String(Date.now()));
  mkdirSync(dir, { recursive: true });
  expectOk(await runOurs(args, { nodeOptions: ['--cpu-prof', '--cpu-prof-dir', dir] }), `profiled geo-sync ${args[0]}`);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written to ${dir}`);
  return summariseProfile(join(dir, file));
}

async function expectSame(url: string, expected: Record<string, string>, what: string, repository = REPOSITORY): Promise<void> {
  const actual = await readTags(url, repository);
  const wrong = Object.keys({ ...expected, ...actual }).filter((tag) => expected[tag] !== actual[tag]);
  if (wrong.length > 0)
    throw new Error(`${what}: ${wrong.length} tags differ from the primary (e.g. ${wrong.slice(0, 5).join(', ')}); ${Object.keys(actual).length} tags there`);
}

/** Every primary tag at the primary's digest; returns how many extra tags the secondary also holds. */
async function expectSuperset(url: string, expected: Record<string, string>, what: string): Promise<number> {
  const actual = await readTags(url, REPOSITORY);
  const wrong = Object.keys(expected).filter((tag) => expected[tag] !== actual[tag]);
  if (wrong.length > 0) throw new Error(`${what}: ${wrong.length} primary tags missing or different (e.g. ${wrong.slice(0, 5).join(', ')})`);
  return Object.keys(actual).filter((tag) => !(tag in expected)).length;
}

function nextStatsFile(): string {
  return join(tmp, `time-${++statsFiles}.txt`);
}

function describeEnvironment() {
  const version = (command: string, args: string[]) => {
    try {
      return execFileSync(command, args, { encoding: 'utf8' }).trim().split('\n')[0] ?? 'unknown';
    } catch {
      return `${command}: unavailable`;
    }
  };
  return {
    node: `node ${process.version}`,
    skopeo: version('skopeo', ['--version']),
    registry: version(process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry', ['--version']),
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  };
}

function formatTable(rows: Row[]): string {
  const header = ['tags', 'measure', 'ours', 'peer', 'ours/peer', 'target', 'meets'];
  const body = rows.map((r) => [
    String(r.size),
    r.measure,
    value(r.ours, r.unit),
    r.peer === undefined ? '-' : `${value(r.peer, r.unit)} (${r.peerName})`,
    r.ratio === undefined ? '-' : `${r.ratio.toFixed(r.ratio < 0.1 ? 3 : 2)}x`,
    r.target,
    r.meets === undefined ? '' : r.meets ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((line) => line[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

function formatProfile(name: string, summary: ProfileSummary): string {
  const list = (entries: ProfileSummary['byFile']) =>
    entries.map((e) => `    ${String(e.ms).padStart(6)} ms ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}`).join('\n');
  return `cpu profile: ${name} (${summary.totalMs} ms wall in the profiled process)\n  self time by file:\n${list(summary.byFile)}\n  self time by function:\n${list(summary.byFunction)}\n`;
}

function value(n: number, unit: string): string {
  if (unit === 's') return `${n.toFixed(n < 10 ? 2 : 1)} s`;
  if (unit === 'req/tag') return `${n.toFixed(3)}/tag`;
  if (unit === 'req/1000 tags') return `${n.toFixed(1)}/1000 tags`;
  if (unit === 'MB') return `${n.toFixed(0)} MB`;
  return `${Math.round(n)} ${unit}`;
}

function describe(s: Sample): string {
  const cpu = s.cpuMs === undefined ? '' : `, cpu ${seconds(s.cpuMs)}`;
  const reg = s.registryCpuMs === undefined ? '' : `, registries cpu ${seconds(s.registryCpuMs)}`;
  return `${seconds(s.wallMs)}${cpu}${reg}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function int(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a whole number, got ${JSON.stringify(raw)}`);
  return n;
}

/** `--name value` or `--name=value` among the bench's own arguments. */
function optionValue(name: string): string | undefined {
  const args = process.argv.slice(2);
  const at = args.findIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  if (at === -1) return undefined;
  return args[at]!.includes('=') ? args[at]!.slice(name.length + 1) : args[at + 1];
}

function intList(raw: string): number[] {
  const sizes = raw.split(',').map((s) => int(s.trim(), Number.NaN));
  if (sizes.length === 0 || sizes.some((n) => !(n > 0)))
    throw new Error(`BENCH_SIZES must be positive whole numbers separated by commas, got ${JSON.stringify(raw)}`);
  return sizes;
}
