/** Exit codes shared by the CLI and reported by handlers: see README "Exit codes". */
export const EXIT = { ok: 0, differences: 1, usage: 2, operational: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The one error class of the engine: a stable `code`, the exit code it maps to, and whether retrying may help. */
export class GeoSyncError extends Error {
  readonly code: string;
  readonly exitCode: 1 | 2 | 3;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { exitCode?: 1 | 2 | 3; retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GeoSyncError';
    this.code = code;
    this.exitCode = options.exitCode ?? 3;
    this.retryable = options.retryable ?? false;
  }
}

/** Bad input from a user, a message or a registry response: exit 2, never retried. */
export function invalidInput(code: string, message: string): GeoSyncError {
  return new GeoSyncError(code, message, { exitCode: 2 });
}

/** A registry answered with an error status. */
export class RegistryError extends GeoSyncError {
  readonly status: number;
  readonly registryCode: string | undefined;
  /** The answer's Retry-After, so that a retry of the whole operation honours it too. */
  readonly retryAfter: string | undefined;

  constructor(message: string, status: number, registryCode: string | undefined, retryable: boolean, retryAfter?: string) {
    super(registryCode ? `REGISTRY_${registryCode}` : `HTTP_${status}`, message, { exitCode: 3, retryable });
    this.name = 'RegistryError';
    this.status = status;
    this.registryCode = registryCode;
    this.retryAfter = retryAfter;
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
