/**
 * Every code the project's own errors carry, in one list: a code is named here before it is
 * thrown, so a misspelt one does not compile, and a reader finds every failure by its name.
 * A registry's own error answers carry `REGISTRY_<its code>` or `HTTP_<status>` (RegistryError).
 */
export const ERROR_CODES = [
  // Bad input: a user's option or configuration, a message, a name (invalidInput; the CLI exits 2).
  'INVALID_OPTION',
  'INVALID_CONFIG',
  'MISSING_CONFIG',
  'INVALID_URL',
  'INVALID_CA_FILE',
  'UNKNOWN_SECONDARY',
  'OUT_OF_SCOPE',
  'INVALID_MESSAGE',
  'INVALID_REPOSITORY',
  'INVALID_TAG',
  'INVALID_DIGEST',
  'INVALID_MANIFEST',
  'UNSUPPORTED_MANIFEST',
  // Reaching a registry and authenticating to it.
  'REGISTRY_UNREACHABLE',
  'FOREIGN_HOST',
  'CREDENTIALS_UNAVAILABLE',
  'AUTH_CHALLENGE_INVALID',
  'AUTH_UNSUPPORTED',
  'AUTH_REFUSED',
  'AUTH_TOKEN_FAILED',
  'AUTH_TOKEN_UNREACHABLE',
  // What a registry answered.
  'INVALID_RESPONSE',
  'BODY_TOO_LARGE',
  'PAGINATION_LOOP',
  'LISTING_FAILED',
  'REPOSITORY_NOT_FOUND',
  'MANIFEST_MISSING',
  'DIGEST_MISMATCH',
  // Uploads.
  'BLOB_TRUNCATED',
  'CHUNK_CONSUMED',
  'UPLOAD_OFFSET_MISMATCH',
  'UPLOAD_PAUSED',
  // Removals and what a registry allows.
  'DELETES_REFUSED',
  'READ_ONLY',
  'SECONDARY_READ_ONLY',
  'TAG_LEFT_ON_THROWAWAY',
  'CONFIRMATION_FAILED',
  // Runs, leases and queues.
  'SYNC_IN_PROGRESS',
  'LEASE_LOST',
  'QUEUE_SEND_FAILED',
] as const;

/** A code of the project's own errors (ERROR_CODES). */
export type GeoSyncErrorCode = (typeof ERROR_CODES)[number];

/** A registry's error answer: its error body's code, or only the HTTP status. */
export type RegistryErrorCode = `REGISTRY_${string}` | `HTTP_${number}`;

export type ErrorCode = GeoSyncErrorCode | RegistryErrorCode;

/**
 * The one error class of the engine: a stable `code`, whether the input was invalid, and whether
 * retrying may help. What an error means to a process (an exit code, a record's state) is the
 * door's to say: the CLI maps errors to exit codes in shared/cli/exit-codes.ts.
 */
export class GeoSyncError extends Error {
  readonly code: ErrorCode;
  /** Bad input (set by invalidInput() and MissingRegistryError only): the same input fails again, however often it is tried. */
  readonly invalid: boolean;
  readonly retryable: boolean;
  /**
   * The registry the error is about, as its origin (`https://host:port`), when a registry's
   * request raised it: a door names the registry and the scheme it used, and says what to try.
   */
  readonly registry: string | undefined;

  constructor(code: ErrorCode, message: string, options: { retryable?: boolean; cause?: unknown; registry?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GeoSyncError';
    this.code = code;
    this.invalid = false;
    this.retryable = options.retryable ?? false;
    this.registry = options.registry;
  }
}

/** The error, marked as about `registry` (an origin) unless it already names one. */
export function aboutRegistry<E>(error: E, registry: string): E {
  if (error instanceof GeoSyncError && error.registry === undefined) (error as { registry: string }).registry = registry;
  return error;
}

/** Bad input from a user, a message or a registry response: never retried (the CLI exits 2). */
export function invalidInput(code: GeoSyncErrorCode, message: string): GeoSyncError {
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

  constructor(message: string, status: number, registryCode: string | undefined, retryable: boolean, retryAfter?: string, registry?: string) {
    super(registryCode ? `REGISTRY_${registryCode}` : `HTTP_${status}`, message, { retryable, ...(registry !== undefined ? { registry } : {}) });
    this.name = 'RegistryError';
    this.status = status;
    this.registryCode = registryCode;
    this.retryAfter = retryAfter;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
