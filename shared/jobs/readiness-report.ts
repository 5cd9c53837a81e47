/**
 * Readiness as a report: the records of the state (a directory, or the table on AWS), and the repositories in each
 * secondary's scope as the primary lists them now (or, offline or when the primary does not
 * answer, as the records know them, said so). `geo-sync ready`, the listener's status page and the
 * fan-out on AWS all ask here; the answer itself is the pure `readiness` of the jobs.
 */
import { errorMessage, type EngineLogger } from '../engine/index.js';
import { repositoriesInScope, type Catalog } from './fan-out.js';
import type { ScopedSecondary } from './ports.js';
import { readiness, type Readiness } from './readiness.js';
import type { RepositoryRecord } from './record.js';

/** The default window of `geo-sync ready`: the daily deep verify, plus an hour for a run that starts late or takes long. */
export const DEFAULT_READY_MAX_AGE = '25h';
/** How long the primary's catalog may take before readiness is told from the records alone. */
export const CATALOG_TIMEOUT_MS = 10_000;

export interface ReadinessReportOptions {
  secondaries: readonly ScopedSecondary[];
  records: readonly RepositoryRecord[];
  /** The primary's catalog; undefined: offline, the records alone. */
  catalog?: Catalog;
  logger: EngineLogger;
  maxAgeMs: number;
  now?: () => number;
  catalogTimeoutMs?: number;
  /** What `catalog` is: the primary's (the default), or the listing a fan-out just made of it. */
  catalogSource?: 'primary' | 'fan-out';
}

export async function readinessReport(options: ReadinessReportOptions): Promise<Readiness> {
  const { secondaries, records, logger, maxAgeMs } = options;
  const now = options.now ?? Date.now;
  const fromRecords = (sourceNote: string) =>
    readiness({ secondaries: secondaries.map(({ name }) => ({ name })), source: 'records', sourceNote, records, now: now(), maxAgeMs });
  if (!options.catalog) return fromRecords('offline: the primary was not asked');
  let listed: Map<string, string[]>;
  try {
    listed = await withTimeout(repositoriesInScope(options.catalog, secondaries, logger), options.catalogTimeoutMs ?? CATALOG_TIMEOUT_MS);
  } catch (error) {
    // The primary may be the thing that is down: say so, and answer from what the records know.
    logger.warn("the primary's catalog could not be listed; readiness is told from the records", { error: errorMessage(error) });
    return fromRecords(`the primary could not be listed (${errorMessage(error)})`);
  }
  return readiness({
    secondaries: secondaries.map(({ name }) => ({ name, repositories: listed.get(name) ?? [] })),
    source: options.catalogSource ?? 'primary',
    records,
    now: now(),
    maxAgeMs,
  });
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
