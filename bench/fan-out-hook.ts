// THE FAN-OUT HOOK. The figure (messages/s that fan-out enqueues into the local SQS server) is
// the AWS side's: this measurement only drives its pieces — fanOut (shared/jobs/),
// SqsQueue (shared/aws/sqs-queue.ts) and startLocalAws (test/aws/support/local-aws.ts) — which
// bench/build-and-run.mjs bundles apart into dist/bench-fan-out.mjs when they all exist. When
// they do not (or do not build), the phase is skipped with a printed note. Nothing here speaks
// SQS itself; the owners of those files may replace the body of measureFanOutEnqueueRate.
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { log } from './harness.js';
import { median } from './measure.js';
import type { Row } from './report.js';

export type FanOutFigure =
  { skipped: string } | { messagesPerSecond: number; messages: number; samplesMs: number[]; repositories: number; secondaries: number };

/** The parts of the AWS side's modules this hook uses, described structurally (they may be absent at type-check time). */
interface FanOutModule {
  startLocalAws(): Promise<{ sqs: unknown; queues: Record<'sync' | 'verify' | 'fanOut', { url: string }>; stop(): Promise<void> }>;
  SqsQueue: new (client: unknown, url: string) => { send(messages: unknown[]): Promise<void> };
  fanOut(
    request: { target: 'sync'; repositories: string[]; force?: boolean },
    catalog: { page(): Promise<{ repositories: string[] }> },
    secondaries: string[],
    runtime: object,
    budget: { remainingMs: number },
  ): Promise<{ kind: string; enqueued?: number }>;
}

export async function measureFanOutEnqueueRate(
  bundlePath: string,
  options: { repositories: number; secondaries: number; reps: number },
): Promise<FanOutFigure> {
  const skipped = process.env.BENCH_FAN_OUT_SKIPPED;
  if (skipped) return { skipped: `the fan-out measurement belongs to the AWS side; ${skipped}` };
  if (!existsSync(bundlePath)) return { skipped: `${bundlePath} was not built (run the bench through bench/build-and-run.mjs)` };
  const aws = (await import(pathToFileURL(bundlePath).href)) as FanOutModule;

  const local = await aws.startLocalAws();
  try {
    const refuse = () => Promise.reject(new Error('the bench fan-out uses an explicit repository list; no state is read or written'));
    const runtime = {
      store: { get: refuse, acquireLease: refuse, release: refuse, list: refuse, getCheckpoint: refuse, putCheckpoint: refuse },
      syncQueue: new aws.SqsQueue(local.sqs, local.queues.sync.url),
      verifyQueue: new aws.SqsQueue(local.sqs, local.queues.verify.url),
      fanOutQueue: new aws.SqsQueue(local.sqs, local.queues.fanOut.url),
      logger: { debug() {}, info() {}, warn() {}, error() {} },
      metrics: { add() {} },
      clock: Date.now,
      random: Math.random,
      retry: { baseMs: 1_000, capMs: 60_000 },
      concurrency: 8,
    };
    const catalog = { page: () => refuse() };
    const secondaries = Array.from({ length: options.secondaries }, (_, i) => `site${i}`);
    const repositories = Array.from({ length: options.repositories }, (_, i) => `bench/fan-out/repo${String(i).padStart(6, '0')}`);
    const run = async (list: string[]) => {
      const started = performance.now();
      const outcome = await aws.fanOut({ target: 'sync', repositories: list, force: true }, catalog, secondaries, runtime, { remainingMs: 15 * 60_000 });
      const expected = list.length * secondaries.length;
      if (outcome.kind !== 'finished' || outcome.enqueued !== expected) throw new Error(`fan-out ${outcome.kind}, enqueued ${outcome.enqueued} of ${expected}`);
      return performance.now() - started;
    };
    await run(repositories.slice(0, 20)); // warm-up: SDK client, connections
    const samplesMs: number[] = [];
    for (let rep = 0; rep < options.reps; rep++) samplesMs.push(await run(repositories));
    const messages = repositories.length * secondaries.length;
    return {
      messagesPerSecond: messages / (median(samplesMs) / 1000),
      messages,
      samplesMs,
      repositories: repositories.length,
      secondaries: secondaries.length,
    };
  } finally {
    await local.stop();
  }
}

/** The bench's fan-out phase: the figure above as a row of the table, or a note saying why it was skipped. */
export async function benchFanOut(bundlePath: string, options: { repositories: number; reps: number }): Promise<{ rows: Row[]; figure: FanOutFigure }> {
  log(`== fan-out (the AWS side's figure) ==`);
  const figure: FanOutFigure = await measureFanOutEnqueueRate(bundlePath, {
    repositories: options.repositories,
    secondaries: 2,
    reps: options.reps,
  }).catch((error: unknown) => ({ skipped: `failed: ${error instanceof Error ? error.message : String(error)}` }));
  if ('skipped' in figure) {
    log(`fan-out enqueue rate: SKIPPED (${figure.skipped})`);
    return { rows: [], figure };
  }
  log(`fan-out enqueue rate: ${Math.round(figure.messagesPerSecond)} messages/s (${figure.messages} messages, median of ${figure.samplesMs.length})`);
  const row: Row = {
    size: 'all',
    measure: `fan-out enqueue (${figure.messages} msgs)`,
    unit: 'msg/s',
    ours: figure.messagesPerSecond,
    peerName: '-',
    target: '>= 2000 msg/s',
    meets: figure.messagesPerSecond >= 2000,
  };
  return { rows: [row], figure };
}
