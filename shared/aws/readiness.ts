/**
 * Readiness on AWS: the DynamoDB records and the repositories in each secondary's scope as the
 * primary lists them (or, when it does not answer, as the records know them, said so). Told after
 * each catalog-wide fan-out run as metrics, from the listing that run made when one invocation made
 * all of it, and returned to a direct invocation of the fan-out. Nothing new is kept: every answer
 * is computed from the records and a listing of the catalog.
 */
import { errorMessage, invalidInput } from '../engine/index.js';
import {
  emitReadiness,
  parseDuration,
  RecordingCatalog,
  type Catalog,
  type FanOutOutcome,
  type FanOutRequest,
  type Readiness,
  type ReadyRequest,
  type Registries,
  readinessReport,
} from '../jobs/index.js';
import type { AwsRuntime } from './runtime.js';

/** How long the primary's catalog may take on AWS: a large catalog takes longer than the CLI's patience, within the invocation's time. */
const CATALOG_TIMEOUT_MS = 60_000;
/** Time kept back from the invocation's remaining time for the records' scan and the metrics. */
const READINESS_MARGIN_MS = 20_000;

/** The report a direct `{"action": "ready"}` returns: the same shape as `geo-sync ready --json`. */
export async function readinessOnAws(
  request: ReadyRequest,
  registries: Registries,
  catalog: Catalog,
  runtime: AwsRuntime,
  remainingMs: number,
  catalogSource: 'primary' | 'fan-out' = 'primary',
): Promise<Readiness> {
  const maxAgeMs = request.maxAge ? parseDuration(request.maxAge) : runtime.readyMaxAgeMs;
  if (maxAgeMs === undefined) throw invalidInput('INVALID_MESSAGE', `maxAge "${request.maxAge}" is not a duration such as 90m, 25h or 2d`);
  const secondaries = registries.secondaries.filter(({ name }) => !request.secondary || name === request.secondary);
  if (secondaries.length === 0) registries.scopeOf(request.secondary!); // throws UNKNOWN_SECONDARY, naming the configured ones
  return readinessReport({
    secondaries,
    records: await runtime.store.list(),
    catalog,
    catalogSource,
    logger: runtime.logger,
    maxAgeMs,
    now: runtime.clock,
    // Past the deadline the invocation is killed: the primary's answer gives way to the records'.
    catalogTimeoutMs: Math.max(1_000, Math.min(CATALOG_TIMEOUT_MS, remainingMs - READINESS_MARGIN_MS)),
  });
}

/**
 * After a catalog-wide run has sent its last message, readiness as metrics for every secondary.
 * A prefix or a list saw part of the catalog, and a continued run has not finished: neither tells.
 * A failure here is logged, never the fan-out's: its messages are already sent.
 */
export async function readinessAfterFanOut(
  request: FanOutRequest,
  outcome: FanOutOutcome,
  registries: Registries,
  catalog: RecordingCatalog,
  runtime: AwsRuntime,
  remainingMs: number,
): Promise<void> {
  if (outcome.kind !== 'finished' || request.prefix || request.repositories) return;
  try {
    // The run's own listing when this invocation walked all of it; a continued walk's last part is not all, so it lists again.
    const listing = catalog.listing;
    const report = listing
      ? await readinessOnAws({ action: 'ready' }, registries, listing, runtime, remainingMs, 'fan-out')
      : await readinessOnAws({ action: 'ready' }, registries, catalog, runtime, remainingMs);
    emitReadiness(report, runtime.metrics);
    const notReady = report.secondaries
      .filter((s) => s.status !== 'ready')
      .map((s) => ({ secondary: s.secondary, status: s.status, repositories: s.notReady.length }));
    runtime.logger.info('readiness', { runId: outcome.runId, source: report.source, exitCode: report.exitCode, notReady });
  } catch (error) {
    runtime.logger.warn('readiness could not be told after the fan-out; its metrics are missing for this run', {
      runId: outcome.runId,
      error: errorMessage(error),
    });
  }
}
