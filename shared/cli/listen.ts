/** The `geo-sync listen` command: its options, the webhook token and the signals; the listener process itself is `local/listener.ts`. */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { errorMessage, invalidInput, type EngineLogger } from '../engine/index.js';
import { fixedToken, rereadToken, type WebhookToken, DEFAULT_READY_MAX_AGE } from '../jobs/index.js';
import { startListener } from '../local/listener.js';
import { readyMaxAgeMs } from './ready.js';
import { cliLogger, endpointsFor, integerIn, sharedOption } from './options.js';

interface ListenCommandOptions {
  setExitCode: (code: number) => void;
  env: NodeJS.ProcessEnv;
}

/** The options `geo-sync listen` is given, after commander's parsing. */
interface ListenFlags {
  primary?: string;
  secondary?: string;
  config?: string;
  port: number;
  host: string;
  reconcileEvery: number;
  workers: number;
  concurrency: number;
  referrers: boolean;
  stateDir: string;
  logLevel: string;
  logFormat?: string;
}

export function registerListenCommand(program: Command, { setExitCode, env }: ListenCommandOptions): void {
  program
    .command('listen')
    .description(
      "replicate within seconds from the primary's notifications (POST /events for distribution and GitLab, /events/harbor, /events/quay/<token>, /events/github; token from GEO_SYNC_WEBHOOK_TOKEN or GEO_SYNC_WEBHOOK_TOKEN_FILE, GitHub's secret from GEO_SYNC_GITHUB_WEBHOOK_SECRET or _FILE), with a periodic exact reconcile; GET /metrics (Prometheus; GEO_SYNC_METRICS_TOKEN to require a bearer token, of /status too), /status (a page: can each secondary take over; GEO_SYNC_READY_MAX_AGE) and /status.json, /healthz, /readyz; logs one line per replication at info",
    )
    .addOption(sharedOption.primary())
    .addOption(sharedOption.secondary())
    .addOption(sharedOption.config(env))
    .addOption(new Option('--port <n>', 'port to listen on').default(8780).argParser(integerIn(0, 65535, '--port')))
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .addOption(
      new Option('--reconcile-every <duration>', 'exact sync of every repository at start and then this often: 30s, 5m, 1h; 0 turns it off')
        .default(3600_000, '1h')
        .argParser(parseDuration),
    )
    .addOption(sharedOption.workers())
    .addOption(sharedOption.concurrency())
    .addOption(sharedOption.noReferrers())
    .addOption(sharedOption.stateDir(env))
    .addOption(sharedOption.logLevel(env, 'info'))
    .addOption(sharedOption.logFormat(env))
    .action(async (opts: ListenFlags) => {
      await listenUntilSignalled(opts, env);
      setExitCode(0);
    });
}

/** Starts the listener, and on SIGTERM or SIGINT stops it the orderly way. */
async function listenUntilSignalled(opts: ListenFlags, env: NodeJS.ProcessEnv): Promise<void> {
  const logger = cliLogger(opts, env);
  const { token, githubSecret, metricsToken } = await listenerSecrets(env, logger);
  const listener = await startListener({
    endpoints: endpointsFor(env, { primary: opts.primary, secondary: opts.secondary, config: opts.config }),
    stateDir: opts.stateDir,
    token,
    ...(githubSecret ? { githubSecret } : {}),
    ...(metricsToken ? { metricsToken } : {}),
    host: opts.host,
    port: opts.port,
    reconcileEveryMs: opts.reconcileEvery,
    workers: opts.workers,
    concurrency: opts.concurrency,
    referrers: opts.referrers,
    readyMaxAgeMs: readyMaxAgeMs(env.GEO_SYNC_READY_MAX_AGE || DEFAULT_READY_MAX_AGE, 'GEO_SYNC_READY_MAX_AGE'),
    logger,
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info('stopping: no new events taken, jobs in flight finishing', { signal });
  const { handedBack } = await listener.close();
  logger.info('stopped', { handedBack });
}

/** The webhook token (required) and the optional secrets, each read once now, so a missing or unreadable one stops the start. */
async function listenerSecrets(
  env: NodeJS.ProcessEnv,
  logger: EngineLogger,
): Promise<{ token: WebhookToken; githubSecret?: WebhookToken; metricsToken?: WebhookToken }> {
  const token = webhookToken(env);
  const first = await token.current().catch((error: unknown) => {
    throw invalidInput('MISSING_CONFIG', `no webhook token: ${errorMessage(error)}`);
  });
  if (first.trim() === '') {
    throw invalidInput(
      'MISSING_CONFIG',
      'GEO_SYNC_WEBHOOK_TOKEN is not set: the listener refuses to start without the token the registry must send (Authorization: Bearer <token>)',
    );
  }
  const githubSecret = optionalSecret(env, 'GEO_SYNC_GITHUB_WEBHOOK_SECRET', 'GitHub webhook secret');
  const metricsToken = optionalSecret(env, 'GEO_SYNC_METRICS_TOKEN', 'metrics token');
  for (const [name, secret] of [
    ['GEO_SYNC_GITHUB_WEBHOOK_SECRET', githubSecret],
    ['GEO_SYNC_METRICS_TOKEN', metricsToken],
  ] as const) {
    if (secret)
      await secret.current().catch((error: unknown) => {
        throw invalidInput('MISSING_CONFIG', `${name}: ${errorMessage(error)}`);
      });
  }
  if (first.length < 16) logger.warn('GEO_SYNC_WEBHOOK_TOKEN is short; use at least 32 random characters');
  return { token, githubSecret, metricsToken };
}

/**
 * The token the registry must send. From GEO_SYNC_WEBHOOK_TOKEN_FILE it is read again when a
 * request does not match (as the notify function re-reads its secret), so replacing the file
 * rotates it without a restart; GEO_SYNC_WEBHOOK_TOKEN is fixed for the life of the process.
 */
function webhookToken(env: NodeJS.ProcessEnv): WebhookToken {
  const file = env.GEO_SYNC_WEBHOOK_TOKEN_FILE;
  if (file) return rereadToken(() => readFile(file, 'utf8'), `GEO_SYNC_WEBHOOK_TOKEN_FILE ${file}`);
  return fixedToken(env.GEO_SYNC_WEBHOOK_TOKEN ?? '');
}

/**
 * A secret that may be left unset: `<NAME>` holds it, or `<NAME>_FILE` names a file holding it
 * (read again on a mismatch, as the webhook token's file is). Both set is an error, not a choice.
 */
function optionalSecret(env: NodeJS.ProcessEnv, name: string, what: string): WebhookToken | undefined {
  const value = env[name];
  const file = env[`${name}_FILE`];
  if (value !== undefined && file !== undefined) throw invalidInput('INVALID_CONFIG', `set ${name} or ${name}_FILE, not both`);
  if (file !== undefined) return rereadToken(() => readFile(file, 'utf8'), `${name}_FILE ${file}`, Date.now, { what });
  if (value === undefined) return undefined;
  if (value.trim() === '') throw invalidInput('INVALID_CONFIG', `${name} is set but empty: unset it, or give the ${what}`);
  return fixedToken(value.trim());
}

/** `30s`, `5m`, `1h` (or `0`, off) in milliseconds. */
export function parseDuration(value: string): number {
  if (value.trim() === '0') return 0;
  const match = /^(\d{1,6})(s|m|h)$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError('--reconcile-every takes a number followed by s, m or h (30s, 5m, 1h), or 0 to turn it off');
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3600_000 }[match[2] as 's' | 'm' | 'h'];
}
