import { GeoSyncError } from '../errors.js';
import { quote } from '../oci.js';

/** The first error of a registry's error body (`{"errors": [{"code", "message"}]}`); empty for any other body. */
export interface RegistryErrorBody {
  code?: string;
  message?: string;
}

/** The one reader of registry error bodies: every answer's `errors[0]` is read here. */
export function parseRegistryError(body: Buffer): RegistryErrorBody {
  let first: { code?: unknown; message?: unknown } | null | undefined;
  try {
    first = (JSON.parse(body.toString('utf8')) as { errors?: Array<typeof first> } | null)?.errors?.[0];
  } catch {
    // Not a registry error body (a proxy's page, nothing at all): the status says enough.
    return {};
  }
  return {
    ...(typeof first?.code === 'string' && { code: first.code }),
    ...(typeof first?.message === 'string' && { message: first.message }),
  };
}

/** The registry's error code in an error body (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, ...), or undefined. */
export function registryErrorCode(body: Buffer): string | undefined {
  return parseRegistryError(body).code;
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
