// `npm run bench`: geo-sync side by side with skopeo sync and a sequential verifier, against real
// docker-registry processes on loopback. Prints each phase as it goes, then a table of medians
// and ratios (ours / peer); writes bench/results.json. See bench/README-fragment.md.
// This file reads the arguments and runs the measures chosen; each measure is its own module
// (startup, events, repository-size, referrers, ecr, big-layer, fan-out-hook, across-regions with latency), over
// the shared harness.ts and report.ts.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { runLatencyBench } from './across-regions.js';
import { benchBigLayer } from './big-layer.js';
import { benchEcr } from './ecr.js';
import { benchEvents } from './events.js';
import { benchFanOut } from './fan-out-hook.js';
import { CLI, FAN_OUT_BUNDLE, RESULTS, cleanUp, config, describeEnvironment, intList, log } from './harness.js';
import type { ProfileSummary } from './profile.js';
import { benchSize } from './repository-size.js';
import { benchReferrers } from './referrers.js';
import { formatProfile, formatTable, type Row } from './report.js';
import { sequentialVerify } from './sequential-verify.js';
import { benchStartup } from './startup.js';

/**
 * `--rtt 0,25,80@200` or BENCH_RTT: the speed-across-regions rows alone (bench/latency.ts). Without
 * `--`, npm keeps the flag for itself: `npm run bench --rtt=25` arrives as npm_config_rtt, and
 * `npm run bench --rtt 25` as npm_config_rtt=true with the value as the first argument.
 */
const ROUND_TRIPS = optionValue('--rtt') ?? process.env.BENCH_RTT ?? npmRttFlag();

/** `--ecr` or BENCH_ONLY=ecr: the ECR rows alone; BENCH_ONLY=referrers: the referrers rows alone. */
const ONLY = process.argv.slice(2).includes('--ecr') ? 'ecr' : process.env.BENCH_ONLY;

function npmRttFlag(): string | undefined {
  const flag = process.env.npm_config_rtt;
  if (flag === undefined || flag === '' || flag === 'false') return undefined;
  return flag === 'true' ? process.argv.slice(2).find((arg) => !arg.startsWith('-')) : flag;
}

if (process.argv[2] === 'sequential-verify') {
  const [primary, secondary, repository] = process.argv.slice(3);
  process.stdout.write(`${JSON.stringify(await sequentialVerify(primary!, secondary!, repository!))}\n`);
  await cleanUp();
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

/** `--name value` or `--name=value` among the bench's own arguments. */
function optionValue(name: string): string | undefined {
  const args = process.argv.slice(2);
  const at = args.findIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  if (at === -1) return undefined;
  return args[at]!.includes('=') ? args[at]!.slice(name.length + 1) : args[at + 1];
}

async function runBench(): Promise<void> {
  const started = performance.now();
  if (ONLY === 'referrers') {
    const result = await benchReferrers();
    runAlone(started, 'referrers', result, `BENCH_ONLY=referrers BENCH_REFERRERS_TAGS=${String(result.details.images)} npm run bench`);
    return;
  }
  if (ONLY === 'ecr') {
    const result = await benchEcr();
    runAlone(started, 'ecr', result, `BENCH_ECR_TAGS=${String(result.details.tags)} npm run bench -- --ecr`);
    return;
  }
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

  details.cliStartup = await benchStartup();

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
  if (ONLY === 'events') {
    process.stdout.write(`\n${formatTable(rows)}\n`);
    log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return;
  }

  for (const size of config.sizes) {
    const result = await benchSize(size, profiles);
    rows.push(...result.rows);
    details[`size${size}`] = result.details;
  }

  // Referrers (OCI 1.1): requests of a no-op sync and of verify with signed images, per side.
  // BENCH_ONLY=referrers runs these rows alone (into bench/results.json under `referrers`, the rest kept); BENCH_REFERRERS=skip leaves them out.
  let referrers: Record<string, unknown> | undefined;
  if (process.env.BENCH_REFERRERS !== 'skip') {
    const result = await benchReferrers();
    rows.push(...result.rows);
    referrers = result.details;
  }

  // Amazon ECR as a side: requests to it per tag and ECR API calls of a no-op sync and a verify, read through ECR's API and as a plain registry.
  // `--ecr` (or BENCH_ONLY=ecr) runs these rows alone (under `ecr` in bench/results.json, the rest kept); BENCH_ECR=skip leaves them out.
  let ecr: Record<string, unknown> | undefined;
  if (process.env.BENCH_ECR !== 'skip') {
    const result = await benchEcr();
    rows.push(...result.rows);
    ecr = result.details;
  }

  const big = await benchBigLayer(config.bigLayerMb, profiles);
  rows.push(...big.rows);
  details.bigLayer = big.details;

  const fanOut = await benchFanOut(FAN_OUT_BUNDLE, { repositories: config.fanOutRepositories, reps: config.reps });
  rows.push(...fanOut.rows);
  details.fanOut = fanOut.figure;

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
    ...(referrers && { referrers: { rows: rows.filter((row) => row.measure.startsWith('referrers, ')), details: referrers } }),
    ...(ecr && { ecr: { rows: rows.filter((row) => row.measure.startsWith('ECR ')), details: ecr } }),
  };
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${RESULTS}`);
}

/** One measure's rows alone, written under `key` in bench/results.json (the rest of the file kept). */
function runAlone(started: number, key: string, result: { rows: Row[]; details: Record<string, unknown> }, command: string): void {
  const totalSeconds = (performance.now() - started) / 1000;
  process.stdout.write(`\n${formatTable(result.rows)}\n`);
  log(`total ${totalSeconds.toFixed(0)} s`);
  const previous = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, unknown>) : {};
  previous[key] = {
    generatedAt: new Date().toISOString(),
    command,
    environment: describeEnvironment(),
    totalSeconds,
    rows: result.rows,
    details: result.details,
  };
  writeFileSync(RESULTS, `${JSON.stringify(previous, null, 2)}\n`);
  log(`wrote ${RESULTS} (${key})`);
}
