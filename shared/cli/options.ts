/** The CLI's option parsers and checks, each written once for every command. */
import { InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_PRUNE,
  MissingRegistryError,
  endpointsFromEnv,
  invalidInput,
  isLogFormat,
  isLogLevel,
  jsonLogger,
  textLogger,
  type EngineLogger,
  type Endpoints,
  type LogLevel,
} from '../engine/index.js';
import { DEFAULT_STATE_DIR } from '../local/file-store.js';

/** An integer option from min to max, as `--concurrency`, `--retries` or `--workers`. */
export function integerIn(min: number, max: number, name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** `--max-prune`: a number from 0 to 1. */
export function fraction(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('--max-prune must be a number from 0 to 1');
  return n;
}

/**
 * The options several commands take, each declared once with its one help text. Each call makes a
 * fresh Option, so every command holds its own.
 */
export const sharedOption = {
  noReferrers: () =>
    new Option('--no-referrers', 'leave OCI 1.1 referrers (signatures, SBOMs, attestations) out, even where the primary serves the referrers API'),
  config: (env: NodeJS.ProcessEnv) =>
    new Option(
      '--config <file>',
      'YAML or JSON list of secondaries with their scopes and prefixes (env GEO_SYNC_CONFIG); instead of GEO_SYNC_SECONDARIES',
    ).default(env.GEO_SYNC_CONFIG || undefined),
  primary: () => new Option('--primary <url>', 'primary registry URL (env GEO_SYNC_PRIMARY_URL); http:// only when written'),
  secondary: () =>
    new Option(
      '--secondary <name|url>',
      'one secondary: a name from GEO_SYNC_SECONDARIES, or a registry URL (env GEO_SYNC_SECONDARY_URL); default: every configured secondary',
    ),
  concurrency: () =>
    new Option('--concurrency <n>', 'most requests in flight per registry (starts at 16, grows while round trips show distance, not queueing)')
      .default(DEFAULT_CONCURRENCY)
      .argParser(integerIn(1, 256, '--concurrency')),
  maxPrune: () =>
    new Option('--max-prune <fraction>', 'remove nothing from a repository when more than this fraction of the tags both sides hold together would go')
      .default(DEFAULT_MAX_PRUNE)
      .argParser(fraction),
  workers: () => new Option('--workers <n>', 'repositories worked on at once').default(4).argParser(integerIn(1, 64, '--workers')),
  stateDir: (env: NodeJS.ProcessEnv) =>
    new Option('--state-dir <dir>', 'where local state is kept (env GEO_SYNC_STATE_DIR)').default(env.GEO_SYNC_STATE_DIR || DEFAULT_STATE_DIR),
  logLevel: (env: NodeJS.ProcessEnv, fallback: LogLevel) =>
    new Option('--log-level <level>', 'logs on stderr: debug, info, warn, error, silent (env GEO_SYNC_LOG_LEVEL)').default(env.GEO_SYNC_LOG_LEVEL ?? fallback),
  logFormat: (env: NodeJS.ProcessEnv) =>
    new Option('--log-format <format>', 'json or text (env GEO_SYNC_LOG_FORMAT); default: text when stderr is a terminal, json otherwise').default(
      env.GEO_SYNC_LOG_FORMAT || undefined,
    ),
};

/** `--log-level`, checked before any work: a usage error (exit 2) otherwise. */
export function logLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw invalidInput('INVALID_OPTION', `--log-level must be debug, info, warn, error or silent, not ${JSON.stringify(value)}`);
  return value;
}

/**
 * The CLI's logger on stderr: readable lines for a person at a terminal, JSON lines for a pipe, a
 * file or a log collector; `--log-format` (or GEO_SYNC_LOG_FORMAT) decides when given. Both are
 * checked before any work: a usage error (exit 2) otherwise.
 */
export function cliLogger(
  options: { logLevel: string; logFormat?: string },
  env: NodeJS.ProcessEnv,
  stream: NodeJS.WriteStream = process.stderr,
): EngineLogger {
  const level = logLevel(options.logLevel);
  const format = options.logFormat ?? (stream.isTTY ? 'text' : 'json');
  if (!isLogFormat(format)) throw invalidInput('INVALID_OPTION', `--log-format must be json or text, not ${JSON.stringify(format)}`);
  const write = (line: string) => void stream.write(line);
  // Colour only where a person reads it, and never against their NO_COLOR (https://no-color.org).
  const colour = stream.isTTY === true && !env.NO_COLOR;
  return format === 'text' ? textLogger(level, write, { colour }) : jsonLogger(level, write);
}

/** The registries of a command, from its options and the environment; a missing one is named with the option that gives it too. */
export function endpointsFor(env: NodeJS.ProcessEnv, overrides: { primary?: string; secondary?: string; config?: string }): Endpoints {
  try {
    return endpointsFromEnv(env, overrides);
  } catch (error) {
    if (!(error instanceof MissingRegistryError)) throw error;
    const role = error.role;
    throw invalidInput('MISSING_CONFIG', `no ${role} registry: pass --${role} <url> or set GEO_SYNC_${role.toUpperCase()}_URL`);
  }
}
