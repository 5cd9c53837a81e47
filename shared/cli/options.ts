/** The CLI's option parsers and checks, each written once for every command. */
import { InvalidArgumentError } from 'commander';
import { invalidInput, isLogLevel, type LogLevel } from '../engine/index.js';

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
