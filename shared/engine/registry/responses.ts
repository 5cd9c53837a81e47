import { GeoSyncError, type RegistryDiagnostic } from '../base/errors.js';
import { quote } from '../base/oci.js';

/** The first error of a registry's error body (`{"errors": [{"code", "message"}]}`); empty for any other body. */
export interface RegistryErrorBody {
  code?: string;
  message?: string;
}

/**
 * The one reader of registry error bodies: every error of `{"errors": [{"code", "message",
 * "detail"}]}` with a string code, in order; empty for any other body (a proxy's page, nothing).
 */
export function parseRegistryErrors(body: Buffer): RegistryDiagnostic[] {
  let errors: unknown;
  try {
    errors = (JSON.parse(body.toString('utf8')) as { errors?: unknown } | null)?.errors;
  } catch {
    // Not a registry error body: the status says enough.
    return [];
  }
  if (!Array.isArray(errors)) return [];
  const diagnostics: RegistryDiagnostic[] = [];
  for (const entry of errors as Array<{ code?: unknown; message?: unknown; detail?: unknown } | null>) {
    if (typeof entry?.code !== 'string') continue;
    diagnostics.push({
      code: entry.code,
      ...(typeof entry.message === 'string' && { message: entry.message }),
      ...(entry.detail !== undefined && entry.detail !== null && { detail: entry.detail }),
    });
  }
  return diagnostics;
}

/** The first error of a registry's error body, for a message; empty when it has none. */
export function parseRegistryError(body: Buffer): RegistryErrorBody {
  const first = parseRegistryErrors(body)[0];
  return first ? { code: first.code, ...(first.message !== undefined && { message: first.message }) } : {};
}

/** The registry's error code in an error body (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, ...), or undefined. */
export function registryErrorCode(body: Buffer): string | undefined {
  return parseRegistryErrors(body)[0]?.code;
}

/** A JSON object body; INVALID_RESPONSE naming `what` otherwise. */
export function parseJson(bytes: Buffer, what: string): unknown {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    return value;
  } catch {
    throw new GeoSyncError('INVALID_RESPONSE', `${what} is not valid JSON`);
  }
}

/** The `rel="next"` target of a Link header, or undefined; malformed headers end pagination with an error. */
export function nextLink(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!match) throw new GeoSyncError('INVALID_RESPONSE', `malformed Link header ${quote(header)}`);
    if (/\brel\s*=\s*"?next"?/i.test(match[2] ?? '')) return match[1];
  }
  return undefined;
}

/** A Content-Type without its parameters. */
export function baseMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim();
}
