/**
 * The one webhook door: `answerWebhook` turns one request to `POST /events` (or `GET /healthz`)
 * into its response, for the local listener (node:http) and the notify function (function URL)
 * alike. Authentication comes first, so a request without the token learns nothing and costs
 * nothing (its body is never read); what each server does with the hints is its `take`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { GeoSyncError, type EngineLogger } from '../../engine/index.js';
import type { Metrics } from '../ports.js';
import { InvalidEnvelope, NOTIFICATION_MEDIA_TYPE, readNotifications, type ReadNotifications } from './notification.js';

/** Largest body read; registry 2.8 sends one event per request, well under a kilobyte or two. */
export const MAX_BODY_BYTES = 1024 * 1024;

export type WebhookAnswer = { status: 200; read: ReadNotifications } | { status: 400 | 401 | 413 | 415; error: string };

export interface WebhookRequest {
  method: string;
  /** Without the query string. */
  path: string;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  /** The body, read only once the headers pass; undefined when it is over MAX_BODY_BYTES (the rest left unread). */
  body: () => Promise<Buffer | undefined>;
  /** The caller's address, for the log of a refusal. */
  remote?: string;
}

export interface WebhookResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** The expected bearer token: cached, and read again (at most now and then) when a request does not match it, so a rotated token is picked up. */
export interface WebhookToken {
  current(): Promise<string>;
  /** The token read again, or undefined when it was read too recently to ask again. */
  refresh(): Promise<string | undefined>;
}

/** What a server gives the door. */
export interface WebhookDoor {
  token: WebhookToken;
  logger: EngineLogger;
  metrics: Metrics;
  clock: () => number;
  /** The body of a `GET /healthz`. */
  health(): Record<string, unknown>;
  /** True once the server is shutting down: events get 503 and the registry sends them again. */
  closing?(): boolean;
  /** Hands the hints on. The 200 waits for it, so a failure here is a 5xx and the registry sends the event again. */
  take(read: ReadNotifications, receivedAt: number): Promise<void> | void;
}

export async function answerWebhook(request: WebhookRequest, door: WebhookDoor): Promise<WebhookResponse> {
  const { logger, metrics } = door;
  if (request.path === '/healthz' && (request.method === 'GET' || request.method === 'HEAD')) return respond(200, JSON.stringify(door.health()));
  if (request.path !== '/events') return respond(404, JSON.stringify({ error: 'not found' }));
  if (request.method !== 'POST') return respond(405, JSON.stringify({ error: 'POST only' }), { allow: 'POST' });
  // The registry keeps an event and sends it again: shutting down loses nothing.
  if (door.closing?.()) return respond(503, JSON.stringify({ error: 'shutting down' }), { 'retry-after': '1' });
  const receivedAt = door.clock();
  const headers = {
    authorization: request.headers.authorization,
    contentType: request.headers['content-type'],
    contentLength: request.headers['content-length'],
  };
  let early = checkHeaders(headers, await door.token.current());
  if (early?.status === 401) {
    const rotated = await door.token.refresh();
    if (rotated !== undefined) early = checkHeaders(headers, rotated);
  }
  let answer = early;
  if (!answer) {
    const body = await request.body();
    answer = body === undefined ? tooLarge() : readBody(body, receivedAt);
  }
  if (answer.status !== 200) {
    logger.warn('webhook request refused', {
      status: answer.status,
      reason: answer.error,
      ...(request.remote !== undefined ? { remote: request.remote } : {}),
    });
    metrics.add('WebhookRefused', 1);
    return respond(answer.status, answerBody(answer), answer.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
  }
  for (const invalid of answer.read.invalid) logger.warn('event ignored: invalid', invalid);
  await door.take(answer.read, receivedAt);
  metrics.add('WebhookEvents', accepted(answer.read));
  return respond(200, answerBody(answer));
}

/** The token is cached this long; a request with another token reads it again at most this often. */
const TOKEN_CACHE_MS = 5 * 60_000;
const TOKEN_REFRESH_MS = 30_000;

/** A token that never changes (the listener's from GEO_SYNC_WEBHOOK_TOKEN). */
export function fixedToken(value: string): WebhookToken {
  return { current: async () => value, refresh: async () => undefined };
}

/**
 * A token kept where it can be replaced (a secret, a file), read again so a rotated token is
 * picked up without a restart. `source` names it in the error when it holds no token.
 */
export function rereadToken(read: () => Promise<string>, source: string, clock: () => number = Date.now): WebhookToken {
  let cached: { value: string; readAt: number } | undefined;
  const load = async () => {
    const value = (await read()).trim();
    // An empty token would match nothing (bearerMatches refuses it), but say why every request is refused.
    if (value === '') throw new GeoSyncError('INVALID_CONFIG', `${source} holds no webhook token`);
    cached = { value, readAt: clock() };
    return value;
  };
  return {
    current: async () => (cached && clock() - cached.readAt < TOKEN_CACHE_MS ? cached.value : load()),
    refresh: async () => (cached && clock() - cached.readAt < TOKEN_REFRESH_MS ? undefined : load()),
  };
}

function respond(statusCode: WebhookAnswer['status'] | 404 | 405 | 503, body: string, headers: Record<string, string> = {}): WebhookResponse {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body };
}

/**
 * Whether the Authorization header carries `Bearer <token>`. Compared in constant time over the
 * SHA-256 of both (equal lengths whatever was sent, so neither the token nor its length leaks).
 */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const presented = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(authorization ?? '')?.[1];
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  const equal = timingSafeEqual(digest(presented ?? ''), digest(token));
  return presented !== undefined && token.length > 0 && equal;
}

/**
 * What can be answered from the headers alone, before a byte of the body is read: 401 without the
 * token, 415 for a body that is not JSON, 413 for a declared length over the limit. Undefined: read the body.
 */
export function checkHeaders(headers: { authorization?: string; contentType?: string; contentLength?: string }, token: string): WebhookAnswer | undefined {
  if (!bearerMatches(headers.authorization, token)) return { status: 401, error: 'missing or wrong bearer token' };
  const type = (headers.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== NOTIFICATION_MEDIA_TYPE && type !== 'application/json' && !type.endsWith('+json')) {
    return { status: 415, error: `content type must be ${NOTIFICATION_MEDIA_TYPE} or application/json` };
  }
  const declared = Number(headers.contentLength);
  if (headers.contentLength !== undefined && Number.isFinite(declared) && declared > MAX_BODY_BYTES) return tooLarge();
  return undefined;
}

/** The body, read whole (at most MAX_BODY_BYTES): 400 when it is not a notification envelope. */
export function readBody(body: Buffer, receivedAt: number): WebhookAnswer {
  if (body.length > MAX_BODY_BYTES) return tooLarge();
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { status: 400, error: 'body is not valid JSON' };
  }
  try {
    return { status: 200, read: readNotifications(json, receivedAt) };
  } catch (error) {
    if (error instanceof InvalidEnvelope) return { status: 400, error: error.message };
    throw error;
  }
}

function tooLarge(): WebhookAnswer {
  return { status: 413, error: `body larger than ${MAX_BODY_BYTES} bytes` };
}

/** The JSON body of an answer: counts only, nothing echoed from the request. */
function answerBody(answer: WebhookAnswer): string {
  if (answer.status !== 200) return JSON.stringify({ error: answer.error });
  return JSON.stringify({ accepted: accepted(answer.read), ignored: answer.read.ignored, invalid: answer.read.invalid.length });
}

/** Events taken as work: tag hints and digest hints. */
function accepted(read: ReadNotifications): number {
  return read.hints.length + read.digests.length;
}
