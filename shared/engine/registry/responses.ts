import { GeoSyncError, RegistryError, type RegistryDiagnostic } from '../base/errors.js';
import type { RequestSpec } from './request.js';
import { RETRYABLE_STATUS } from './retry.js';
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

/** The error for a status the request did not expect, with the registry's diagnostics. */
export function registryError(spec: RequestSpec, url: URL, status: number, body: Buffer, retryAfter: string | undefined, registry: string): RegistryError {
  const diagnostics = parseRegistryErrors(body);
  const { code, message } = diagnostics[0] ?? {};
  const detail = message !== undefined ? `: ${message.slice(0, 200)}` : '';
  const what = status === 401 || status === 403 ? 'authentication refused' : `HTTP ${status}${code ? ` ${code}` : ''}`;
  return new RegistryError({
    message: `${spec.method} ${url.origin}${url.pathname}: ${what}${detail}`,
    status,
    diagnostics,
    retryable: RETRYABLE_STATUS.has(status),
    method: spec.method,
    path: url.pathname,
    ...(retryAfter !== undefined && { retryAfter }),
    registry,
  });
}

export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

export function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const flat: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) flat[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  return flat;
}

export async function readCapped(body: AsyncIterable<Uint8Array> & { destroy?: (e?: Error) => void }, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy?.();
      throw new GeoSyncError('BODY_TOO_LARGE', `response body exceeds ${limit} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
