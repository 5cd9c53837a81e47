/**
 * The one error class of the engine: a stable `code`, whether the input was invalid, and whether
 * retrying may help. What an error means to a process (an exit code, a record's state) is the
 * door's to say: the CLI maps errors to exit codes in shared/cli/exit-codes.ts.
 */
export class GeoSyncError extends Error {
  readonly code: string;
  /** Bad input (set by invalidInput() only): the same input fails again, however often it is tried. */
  readonly invalid: boolean;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GeoSyncError';
    this.code = code;
    this.invalid = false;
    this.retryable = options.retryable ?? false;
  }
}

/** Bad input from a user, a message or a registry response: never retried (the CLI exits 2). */
export function invalidInput(code: string, message: string): GeoSyncError {
  const error = new GeoSyncError(code, message);
  (error as { invalid: boolean }).invalid = true;
  return error;
}

/** A registry answered with an error status. */
export class RegistryError extends GeoSyncError {
  readonly status: number;
  readonly registryCode: string | undefined;
  /** The answer's Retry-After, so that a retry of the whole operation honours it too. */
  readonly retryAfter: string | undefined;

  constructor(message: string, status: number, registryCode: string | undefined, retryable: boolean, retryAfter?: string) {
    super(registryCode ? `REGISTRY_${registryCode}` : `HTTP_${status}`, message, { retryable });
    this.name = 'RegistryError';
    this.status = status;
    this.registryCode = registryCode;
    this.retryAfter = retryAfter;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
