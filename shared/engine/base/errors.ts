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
  // ECR's own API (listing, removal, repository creation, registry tokens).
  'ECR_API_FAILED',
  'ECR_ACCESS_DENIED',
  'REPOSITORY_CREATE_DENIED',
  // What a registry answered.
  'INVALID_RESPONSE',
  'BODY_TOO_LARGE',
  'PAGINATION_LOOP',
  'LISTING_FAILED',
  /** The primary refuses `_catalog` (401, 403, 404): the repositories must come from a file or GitLab's API. */
  'CATALOG_REFUSED',
  'REPOSITORY_NOT_FOUND',
  'MANIFEST_MISSING',
  'DIGEST_MISMATCH',
  /** A tag the secondary refuses to move (ECR's IMMUTABLE repositories): no retry moves it, a person must. */
  'TAG_IMMUTABLE',
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

/** Failures no retry clears, only a person (a repository's settings, a role's permissions): named, counted, not retried in a loop. */
export const NEEDS_A_PERSON: ReadonlySet<string> = new Set(['TAG_IMMUTABLE', 'REPOSITORY_CREATE_DENIED']);

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

/**
 * The error codes of the OCI distribution spec (and those registries send besides it, such as
 * TAG_INVALID), as a registry's error body carries them: `{"errors": [{"code", "message", "detail"}]}`.
 * A registry may send a code not listed here; it is kept as sent.
 */
export const OCI_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  // Sent by registries though not in the spec's table: distribution (TAG_INVALID, MANIFEST_UNVERIFIED,
  // PAGINATION_NUMBER_INVALID, RANGE_INVALID) and Harbor (NOT_FOUND).
  'TAG_INVALID',
  'MANIFEST_UNVERIFIED',
  'PAGINATION_NUMBER_INVALID',
  'RANGE_INVALID',
  'NOT_FOUND',
] as const;

/** A code of the OCI distribution spec's error table (OCI_ERROR_CODES). */
export type OciErrorCode = (typeof OCI_ERROR_CODES)[number];

/** One error of a registry's error body, as sent: its code (typed where the spec names it), message and detail. */
export interface RegistryDiagnostic {
  code: OciErrorCode | (string & {});
  message?: string;
  detail?: unknown;
}

/** What a registry's error answer carries, every part of it, for RegistryError. */
export interface RegistryAnswer {
  /** The one-line message, as the sender writes it. */
  message: string;
  status: number;
  /** Every error of the body, in order; empty for a body that is not a registry's error body. */
  diagnostics: readonly RegistryDiagnostic[];
  retryable: boolean;
  method?: string;
  /** The request's path (without its query: it may carry an upload's signed state). */
  path?: string;
  retryAfter?: string;
  /** The registry's origin (`https://host:port`). */
  registry?: string;
}

/**
 * A registry answered with an error status. Every diagnostic is kept (go-containerregistry's
 * transport.Error): all the body's errors, the status, the request's method and path, the
 * registry, its Retry-After; `code` is `REGISTRY_<first code>`, or `HTTP_<status>` without one.
 */
export class RegistryError extends GeoSyncError {
  readonly status: number;
  /** The first error's code, or undefined when the body had none. */
  readonly registryCode: RegistryDiagnostic['code'] | undefined;
  readonly diagnostics: readonly RegistryDiagnostic[];
  readonly method: string | undefined;
  readonly path: string | undefined;
  /** The answer's Retry-After, so that a retry of the whole operation honours it too. */
  readonly retryAfter: string | undefined;

  constructor(answer: RegistryAnswer) {
    const first = answer.diagnostics[0]?.code;
    super(first ? `REGISTRY_${first}` : `HTTP_${answer.status}`, answer.message, {
      retryable: answer.retryable,
      ...(answer.registry !== undefined ? { registry: answer.registry } : {}),
    });
    this.name = 'RegistryError';
    this.status = answer.status;
    this.registryCode = first;
    this.diagnostics = answer.diagnostics;
    this.method = answer.method;
    this.path = answer.path;
    this.retryAfter = answer.retryAfter;
  }

  /** Whether the registry sent `code` among its errors (not only first). */
  has(code: OciErrorCode): boolean {
    return this.diagnostics.some((d) => d.code === code);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
