/** The CLI's option parsers and checks, each written once for every command. */
import { InvalidArgumentError } from 'commander';
import { MissingRegistryError, endpointsFromEnv, invalidInput, isLogLevel, type Endpoints, type LogLevel } from '../engine/index.js';

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

/** `--log-level`, checked before any work: a usage error (exit 2) otherwise. */
export function logLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw invalidInput('INVALID_OPTION', `--log-level must be debug, info, warn, error or silent, not ${JSON.stringify(value)}`);
  return value;
}

/** The registries of a command, from its options and the environment; a missing one is named with the option that gives it too. */
export function endpointsFor(env: NodeJS.ProcessEnv, overrides: { primary?: string; secondary?: string }): Endpoints {
  try {
    return endpointsFromEnv(env, overrides);
  } catch (error) {
    if (!(error instanceof MissingRegistryError)) throw error;
    const role = error.role;
    throw invalidInput('MISSING_CONFIG', `no ${role} registry: pass --${role} <url> or set GEO_SYNC_${role.toUpperCase()}_URL`);
  }
}
