import { GeoSyncError, type ErrorCode } from '../engine/index.js';

/** The CLI's exit codes: see README "Exit codes". */
export const EXIT = { ok: 0, differences: 1, usage: 2, operational: 3 } as const;

/** Errors that end in another exit code than 3 for their code alone. */
const BY_CODE: Readonly<Partial<Record<ErrorCode, number>>> = {
  // Another run holds the repository's lock: nothing failed, the work is still to do.
  SYNC_IN_PROGRESS: EXIT.differences,
};

/** The one table from an error to the CLI's exit code: invalid input 2, a held lock 1, anything else 3. */
export function exitCodeFor(error: unknown): number {
  if (!(error instanceof GeoSyncError)) return EXIT.operational;
  if (error.invalid) return EXIT.usage;
  return BY_CODE[error.code] ?? EXIT.operational;
}
