/** `geo-sync run` and `geo-sync status`: local mode over the same jobs as the Lambda functions. */
import type { Command } from 'commander';
import { invalidInput, shownUploads, validateRepositoryName } from '../engine/index.js';
import { FileStateStore } from '../local/file-store.js';
import { localExitCode, runLocal, type LocalProgress, type LocalRunSummary } from '../local/run.js';
import { overallStatus, repositorySourceFrom, withoutLease, type RepositoryRecord } from '../jobs/index.js';
import { progressBar } from './format.js';
import { cliLogger, endpointsFor, sharedOption } from './options.js';

interface LocalCommandOptions {
  /** Where the exit code goes; the main CLI passes its own setter. Default: process.exitCode. */
  setExitCode?: (code: number) => void;
  env?: NodeJS.ProcessEnv;
}

export function registerLocalCommands(program: Command, options: LocalCommandOptions = {}): void {
  const env = options.env ?? process.env;
  const setExitCode = options.setExitCode ?? ((code: number) => void (process.exitCode = code));

  program
    .command('run')
    .description('sync then verify every repository of the primary (or those named) to every secondary, on this machine')
    .option('--repository <name>', 'only this repository (repeatable)', collect, [] as string[])
    .option('--prefix <prefix>', 'only repositories whose name starts with this')
    .option('--repositories-file <file>', "list the primary's repositories from this file (one name a line) instead of its catalog")
    .addOption(sharedOption.primary())
    .addOption(sharedOption.secondary())
    .addOption(sharedOption.config(env))
    .addOption(sharedOption.workers())
    .addOption(sharedOption.concurrency())
    .addOption(sharedOption.noReferrers())
    .addOption(sharedOption.maxPrune())
    .addOption(sharedOption.stateDir(env))
    .option('--json', 'print the summary as JSON')
    .addOption(sharedOption.logLevel(env, 'warn'))
    .addOption(sharedOption.logFormat(env))
    .action(
      async (opts: {
        repository: string[];
        prefix?: string;
        repositoriesFile?: string;
        primary?: string;
        secondary?: string;
        config?: string;
        workers: number;
        concurrency: number;
        referrers: boolean;
        maxPrune: number;
        stateDir: string;
        json?: boolean;
        logLevel: string;
        logFormat?: string;
      }) => {
        const logger = cliLogger(opts, env);
        opts.repository.forEach(validateRepositoryName);
        if (opts.prefix && opts.repository.length) throw invalidInput('INVALID_OPTION', 'give --repository or --prefix, not both');
        const showProgress = !opts.json && process.stderr.isTTY === true;
        const summary = await runLocal({
          endpoints: endpointsFor(env, { primary: opts.primary, secondary: opts.secondary, config: opts.config }),
          stateDir: opts.stateDir,
          repositories: opts.repository,
          ...(opts.prefix ? { prefix: opts.prefix } : {}),
          source: repositorySourceFrom(env, opts.repositoriesFile),
          workers: opts.workers,
          concurrency: opts.concurrency,
          referrers: opts.referrers,
          maxPrune: opts.maxPrune,
          logger,
          ...(showProgress ? { onProgress: progressLine(process.stderr) } : {}),
        });
        if (showProgress) process.stderr.write('\n');
        process.stdout.write(opts.json ? `${JSON.stringify(summaryJson(summary), null, 2)}\n` : `${formatSummary(summary)}\n`);
        setExitCode(localExitCode(summary));
      },
    );

  program
    .command('status')
    .description('show the recorded state of every repository and secondary')
    .addOption(sharedOption.stateDir(env))
    .option('--json', 'print an array of objects with repository, secondary, status and the full record')
    .action(async (opts: { stateDir: string; json?: boolean }) => {
      const records = await new FileStateStore(opts.stateDir).list();
      process.stdout.write(opts.json ? `${JSON.stringify(records.map(statusJson), null, 2)}\n` : `${formatStatus(records)}\n`);
      setExitCode(0);
    });
}

function statusJson(record: RepositoryRecord) {
  const { uploads, ...rest } = withoutLease(record);
  return { ...rest, ...(uploads ? { uploads: shownUploads(uploads) } : {}), status: overallStatus(record) };
}

function summaryJson(summary: LocalRunSummary) {
  return { ...summary, records: summary.records.map(statusJson) };
}

function formatSummary(summary: LocalRunSummary): string {
  const lines = [
    `${summary.repositories} repositories, ${summary.messages.sync} sync and ${summary.messages.verify} verify messages in ${summary.seconds.toFixed(1)} s`,
    formatStatus(summary.records),
  ];
  const held = (state: RepositoryRecord['syncState']) => summary.records.filter((r) => r.syncState === state).map((r) => `${r.secondary}/${r.repository}`);
  const guarded = held('guard-held');
  if (guarded.length > 0)
    lines.push(
      `prune guard held, nothing removed from: ${guarded.join(', ')}; check the primary, then run again with a higher --max-prune if the removals are intended`,
    );
  const refused = held('deletes-refused');
  if (refused.length > 0) lines.push(`the secondary refuses deletes, extra tags left in: ${refused.join(', ')}`);
  const tagsRefused = held('tags-refused');
  if (tagsRefused.length > 0) lines.push(`the secondary refuses tags no retry will move (see status), in: ${tagsRefused.join(', ')}`);
  if (summary.retriesPending > 0) lines.push(`${summary.retriesPending} retries scheduled for later: run again after the times shown`);
  if (summary.rejected > 0) lines.push(`${summary.rejected} messages rejected (see the logs on stderr)`);
  if (summary.busy.length > 0) lines.push(`left alone, another geo-sync was syncing them: ${summary.busy.join(', ')}`);
  for (const { secondary, scope } of summary.unmatched ?? [])
    lines.push(`the scope of ${secondary} keeps none of the primary's repositories (${scope}): nothing was synced there`);
  return lines.join('\n');
}

/**
 * `status` at a glance: one row per (repository, secondary), those that need a human (a held
 * guard, refused deletes, a mismatch left after a sync) first, then failures (retried by
 * themselves), then the rest; each in name order.
 */
export function formatStatus(records: RepositoryRecord[], now: number = Date.now()): string {
  if (records.length === 0) return 'no repositories recorded yet: run `geo-sync run` first';
  const events = records.some((r) => r.lastEvent);
  const rows = [...records].sort(byUrgency).map((r) => {
    const problem = r.syncError ? `${r.syncError}${r.nextRetryAt ? ` (retry ${r.retryCount} at ${r.nextRetryAt})` : ''}` : (r.verifyError ?? differences(r));
    return [
      // Both names where the secondary's prefix places the copy elsewhere.
      r.secondaryRepository ? `${r.repository} -> ${r.secondaryRepository}` : r.repository,
      r.secondary,
      overallStatus(r),
      lastSyncCell(r, now),
      lastVerifyCell(r, now),
      ...(events ? [lastEventCell(r, now)] : []),
      needsAHuman(r).join(', ') || '-',
      problem,
    ];
  });
  const header = ['REPOSITORY', 'SECONDARY', 'STATUS', 'LAST SYNC', 'LAST VERIFY', ...(events ? ['LAST EVENT'] : []), 'NEEDS A HUMAN', 'DETAIL'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** What waits for a person: nothing retries these by itself into a different result. */
function needsAHuman(record: RepositoryRecord): string[] {
  const needs: string[] = [];
  if (record.syncState === 'guard-held') needs.push('guard held');
  if (record.syncState === 'deletes-refused') needs.push('deletes refused');
  if (record.syncState === 'tags-refused') needs.push('tags refused');
  if (record.verifyState === 'mismatch') needs.push('mismatch');
  return needs;
}

function urgency(record: RepositoryRecord): number {
  if (needsAHuman(record).length > 0) return 0;
  return record.syncState === 'failed' || record.verifyError !== undefined ? 1 : 2;
}

function byUrgency(a: RepositoryRecord, b: RepositoryRecord): number {
  return urgency(a) - urgency(b) || a.repository.localeCompare(b.repository) || a.secondary.localeCompare(b.secondary);
}

/** `12s ago`, `5m ago`, `3h ago`, `2d ago`: how old a record's news is, at a glance. */
export function age(iso: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

/** `status`'s LAST SYNC column: when the last sync finished and what it wrote. */
function lastSyncCell(record: RepositoryRecord, now: number): string {
  const last = record.lastSync;
  if (!last) return '-';
  return `${age(last.finishedAt, now)}: copied ${last.copied}, repaired ${last.repaired}, removed ${last.removed}`;
}

/** `status`'s LAST VERIFY column: what the last verification found, and how long ago. */
function lastVerifyCell(record: RepositoryRecord, now: number): string {
  if (!record.verifiedAt || record.verifyState === 'pending') return '-';
  // A verify that errored is stored as 'failed' and shown as what it is: an error.
  const found = record.verifyState === 'failed' ? 'error' : record.verifyState;
  return `${found}, ${age(record.verifiedAt, now)}`;
}

/** `status`'s LAST EVENT column: when the last event job finished, how it ended, its lag. */
export function lastEventCell(record: RepositoryRecord, now: number = Date.now()): string {
  const event = record.lastEvent;
  if (!event) return '-';
  const lag = event.status === 'synced' && record.lagSeconds !== undefined ? `, lag ${record.lagSeconds.toFixed(1)} s` : '';
  const digests = event.digests ? `, ${event.digests} digest${event.digests === 1 ? '' : 's'}` : '';
  return `${age(event.finishedAt, now)} ${event.status} (${event.tags} tag${event.tags === 1 ? '' : 's'}${digests}${lag})`;
}

function differences(record: RepositoryRecord): string {
  const d = record.differences;
  const r = d?.referrers;
  const tags = d && d.missing + d.extra + d.mismatched > 0 ? `missing ${d.missing}, extra ${d.extra}, mismatched ${d.mismatched}` : '';
  const referrers = r && r.missing + r.extra + r.mismatched > 0 ? `referrers missing ${r.missing}, extra ${r.extra}, mismatched ${r.mismatched}` : '';
  return [tags, referrers].filter(Boolean).join('; ');
}

/** One line redrawn in place on a terminal. */
function progressLine(stream: NodeJS.WriteStream): (p: LocalProgress) => void {
  return ({ synced, verified, total }) => stream.write(`\r${progressBar(synced, total)} ${synced}/${total} synced, ${verified} verified`);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
