/** `geo-sync ready`: could each secondary take the primary's place now, and how old is that answer? */
import { Option, type Command } from 'commander';
import { invalidInput } from '../engine/index.js';
import {
  openRegistries,
  parseDuration,
  registryCatalog,
  repositorySourceFrom,
  type Readiness,
  type SecondaryReadiness,
  DEFAULT_READY_MAX_AGE,
  readinessReport,
} from '../jobs/index.js';
import { FileStateStore } from '../local/file-store.js';
import { EXIT } from './exit-codes.js';
import { cliLogger, endpointsFor, sharedOption } from './options.js';

/** Repositories named under a secondary that is not ready, before "and N more". */
const SHOWN_NOT_READY = 10;

interface ReadyFlags {
  primary?: string;
  secondary?: string;
  config?: string;
  maxAge: string;
  offline?: boolean;
  stateDir: string;
  json?: boolean;
  logLevel: string;
  logFormat?: string;
}

export function registerReadyCommand(program: Command, { setExitCode, env }: { setExitCode: (code: number) => void; env: NodeJS.ProcessEnv }): void {
  program
    .command('ready')
    .description(
      'could each secondary take over now: every repository in its scope verified synced within --max-age and none waiting for a human (exit 0), not ready (1), could not tell (3)',
    )
    .addOption(sharedOption.primary())
    .addOption(sharedOption.secondary())
    .addOption(sharedOption.config(env))
    .addOption(
      new Option('--max-age <duration>', 'how recent a verification counts, as 90m, 25h or 2d (env GEO_SYNC_READY_MAX_AGE)').default(
        env.GEO_SYNC_READY_MAX_AGE || DEFAULT_READY_MAX_AGE,
      ),
    )
    .option('--offline', "take the repositories in scope from the local records, without listing the primary's catalog")
    .addOption(sharedOption.stateDir(env))
    .option('--json', 'print the report as one JSON object')
    .addOption(sharedOption.logLevel(env, 'warn'))
    .addOption(sharedOption.logFormat(env))
    .action(async (flags: ReadyFlags) => setExitCode(await ready(flags, env)));
}

/** A readiness window as `--max-age` or GEO_SYNC_READY_MAX_AGE gives it; anything but 90m, 25h or 2d is a usage error (exit 2). */
export function readyMaxAgeMs(text: string, name = '--max-age'): number {
  const ms = parseDuration(text);
  if (ms === undefined)
    throw invalidInput('INVALID_OPTION', `${name} must be a whole number of minutes, hours or days, as 90m, 25h or 2d, not ${JSON.stringify(text)}`);
  return ms;
}

async function ready(flags: ReadyFlags, env: NodeJS.ProcessEnv): Promise<number> {
  const maxAgeMs = readyMaxAgeMs(flags.maxAge);
  const logger = cliLogger(flags, env);
  const endpoints = endpointsFor(env, { primary: flags.primary, secondary: flags.secondary, config: flags.config });
  const records = await new FileStateStore(flags.stateDir).list();
  const registries = openRegistries(endpoints, { logger });
  try {
    const report = await readinessReport({
      secondaries: endpoints.secondaries,
      records,
      ...(flags.offline ? {} : { catalog: registryCatalog(registries, repositorySourceFrom(env)) }),
      logger,
      maxAgeMs,
    });
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReadiness(report)}\n`);
    return report.exitCode === 0 ? EXIT.ok : report.exitCode === 1 ? EXIT.differences : EXIT.operational;
  } finally {
    await registries.close();
  }
}

/** One line per secondary, the worst first, each followed by what keeps it from ready (capped); then where the scope came from. */
export function formatReadiness(report: Readiness): string {
  const lines = report.secondaries.flatMap((secondary) => {
    const blockers = secondary.notReady.slice(0, SHOWN_NOT_READY).map(({ repository, state, detail }) => `  ${repository}: ${state}: ${detail}`);
    const more = secondary.notReady.length - SHOWN_NOT_READY;
    return [secondaryLine(secondary, report.maxAgeSeconds), ...blockers, ...(more > 0 ? [`  and ${more} more`] : [])];
  });
  const scope = {
    primary: "repositories in scope: as the primary's catalog lists them now",
    'fan-out': "repositories in scope: as the fan-out just before listed the primary's catalog",
    records: `repositories in scope: as the local records know them (${report.sourceNote})`,
  }[report.source];
  return [...lines, scope].join('\n');
}

function secondaryLine(s: SecondaryReadiness, maxAgeSeconds: number): string {
  const word = { ready: 'READY', 'not-ready': 'NOT READY', unknown: 'UNKNOWN' }[s.status];
  const c = s.counts;
  const counts = [
    `${c.ready} verified synced within ${windowText(maxAgeSeconds)}`,
    `${c.mismatch} mismatched`,
    `${c.failed} failed`,
    `${c['needs-human']} waiting for a human`,
    `${c['never-verified']} never verified`,
    ...(c.unverified > 0 ? [`${c.unverified} changed since verified`] : []),
    ...(c.stale > 0 ? [`${c.stale} verified too long ago`] : []),
  ].join(', ');
  const oldest = s.oldestVerificationAgeSeconds === undefined ? 'no verification' : `oldest verification ${ageText(s.oldestVerificationAgeSeconds)} ago`;
  const lag =
    s.lag.events === 0 ? 'no recent event lag' : `lag p50 ${s.lag.p50Seconds!.toFixed(1)} s, p99 ${s.lag.p99Seconds!.toFixed(1)} s (${s.lag.events} events)`;
  return `${word.padEnd(9)}  ${s.secondary}: ${s.repositories} repositories: ${counts}; ${oldest}; ${lag}`;
}

function windowText(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  return seconds % 3600 === 0 ? `${seconds / 3600}h` : `${Math.round(seconds / 60)}m`;
}

export function ageText(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return seconds < 48 * 3600 ? `${Math.floor(seconds / 3600)}h` : `${Math.floor(seconds / 86_400)}d`;
}
