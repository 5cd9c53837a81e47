// `--rtt`: the speed-across-regions run. Gives latency.ts's measure the harness's registries and
// tools, prints its rows and the Lambda cost, and writes them to bench/results.json under
// `latency`, keeping the rest of the file.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  CLI,
  REPOSITORY,
  RESULTS,
  SERVERLESS_YML,
  config,
  describeEnvironment,
  int,
  log,
  measured,
  registry,
  runOurs,
  runSequentialVerify,
  runSkopeoSync,
} from './harness.js';
import { benchLatency, formatCostTable, formatLatencyTable, parseRoundTrips, stackShare } from './latency.js';
import { pushBaseLayer, seedRepository } from './seed.js';

/**
 * Initial sync, no-op sync and verify with every registry behind a delaying proxy, side by side;
 * the rows and the Lambda cost table go into results.json under `latency`, the rest is kept.
 */
export async function runLatencyBench(raw: string): Promise<void> {
  const started = performance.now();
  const roundTrips = parseRoundTrips(raw);
  const sizes = process.env.BENCH_SIZES ? config.sizes : [500, 200];
  const peerRepsFar = int(process.env.BENCH_PEER_REPS_FAR, 1);
  // BENCH_LAMBDA_SHARE=0 leaves out the runs at the stack's share (the old build has no such bound).
  const lambdaShare = process.env.BENCH_LAMBDA_SHARE === '0' ? undefined : int(process.env.BENCH_LAMBDA_SHARE, stackShare(SERVERLESS_YML));
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
        const result = await runSequentialVerify(primaryUrl, secondaryUrl, REPOSITORY);
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
    { sizes, roundTrips, reps: config.reps, peerRepsFar, serverlessYml: SERVERLESS_YML, lambdaShare },
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
    config: { sizes, roundTrips, reps: config.reps, peerRepsFar, lambdaShare, registryCache: config.registryCache, cli: CLI },
    totalSeconds,
    notes: [
      'every registry behind a delaying proxy (test/support/delay-proxy.ts, a TCP relay) that holds each byte sent to the registry MS before passing it on: each round trip takes MS longer, all of it on the way there; answers come back at once; at 0 ms no proxy',
      'ours, skopeo and the sequential verifier all go through the same proxies; the registries are read back directly to check each initial sync',
      `ours = the geo-sync CLI binary, one process per run, default --concurrency (256 since issue 22, 64 before: the ceiling; the in-flight limit starts at 16); ${config.reps} runs, medians`,
      'ours near: above 0 ms each far run of ours is followed by the same work to the registries directly (no proxy), into its own secondary; far/near = the ratio of their medians (issue 22: <= 1.25 at 80 and 150 ms, at 25 ms no worse than before)',
      `Lambda at the stack's share: above 0 ms, ours' no-op and verify again with --concurrency ${lambdaShare ?? '-'} (serverless.yml's registryMaxInFlight / syncConcurrency: each invocation's ceiling per registry)`,
      `peers: ${config.reps} runs at 0 ms, ${peerRepsFar} above (skopeo takes minutes per run there); medians`,
      "limit: the in-flight limit of ours' last run, per registry (primary/secondary): the highest it reached and where it ended",
      `Lambda cost: GB-seconds = the run's wall time (the CLI's process start included, so a warm Lambda pays a little less) x the function's memory in serverless.yml (sync ${latency.memoryMb.sync} MB, verify ${latency.memoryMb.verify} MB), per 1,000 tags`,
      'goals (issue 14) at 500 tags: 25 ms initial <= 0.03x skopeo, no-op <= 0.02x, verify <= 0.03x sequential; 0 ms no worse than before (0.33x / 0.26x / 0.56x); no-op at 25 ms <= 1.3x the no-op at 0 ms',
    ],
    rows: latency.rows,
    farNoop: latency.extra,
    lambdaCost: { memoryMb: latency.memoryMb, perThousandTags: latency.cost },
    atStackShare: latency.shares,
  };
  writeFileSync(RESULTS, `${JSON.stringify(previous, null, 2)}\n`);
  log(`wrote ${RESULTS} (latency)`);
}
