/**
 * The one webhook door: `answerWebhook` turns one request to a webhook path (or `GET /healthz`)
 * into its response, for the local listener (node:http) and the notify function (function URL)
 * alike. Each registry's format has its own path, and the path alone says which format a request
 * is and how it must authenticate: a body is never read to guess. Authentication comes first,
 * before the body wherever the scheme allows, so a request without the secret learns nothing and
 * costs nothing; what each server does with the hints is its `take`.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { GeoSyncError, type EngineLogger } from '../../engine/index.js';
import type { Metrics } from '../ports.js';
import { InvalidEnvelope, NOTIFICATION_MEDIA_TYPE, readNotifications, type ReadNotifications } from './notification.js';
import { readGitHub, readHarbor, readQuay } from './vendor-notifications.js';

/** Largest body read; registry 2.8 sends one event per request, well under a kilobyte or two. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** The webhook formats, each on its own path. */
export type WebhookFormat = 'distribution' | 'harbor' | 'quay' | 'github';
export const WEBHOOK_FORMATS: readonly WebhookFormat[] = ['distribution', 'harbor', 'quay', 'github'];

/** Why a request was refused: a closed set, so it can be a metric's label. */
export type RefusalReason = 'unauthorized' | 'not_configured' | 'unsupported_media_type' | 'too_large' | 'malformed' | 'shutting_down';
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'unauthorized',
  'not_configured',
  'unsupported_media_type',
  'too_large',
  'malformed',
  'shutting_down',
];

type Refusal =
  | { status: 400; reason: 'malformed' }
  | { status: 401; reason: 'unauthorized' }
  | { status: 404; reason: 'not_configured' }
  | { status: 413; reason: 'too_large' }
  | { status: 415; reason: 'unsupported_media_type' };

export type WebhookAnswer = { status: 200; read: ReadNotifications } | (Refusal & { error: string });

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

/** The expected secret: cached, and read again (at most now and then) when a request does not match it, so a rotated one is picked up. */
export interface WebhookToken {
  current(): Promise<string>;
  /** The secret read again, or undefined when it was read too recently to ask again. */
  refresh(): Promise<string | undefined>;
}

/** Counts of what the door answered, by format: for the listener's /metrics. */
export interface WebhookObserver {
  refused(format: WebhookFormat, reason: RefusalReason): void;
  read(format: WebhookFormat, read: ReadNotifications): void;
}

/** What a server gives the door. */
export interface WebhookDoor {
  /** The bearer token of distribution and Harbor, and the path secret of Quay. */
  token: WebhookToken;
  /** The HMAC secret of GitHub's webhook; without one (or an empty one), `/events/github` answers 404. */
  githubSecret?: WebhookToken;
  logger: EngineLogger;
  metrics: Metrics;
  observer?: WebhookObserver;
  clock: () => number;
  /** The body of a `GET /healthz`. */
  health(): Record<string, unknown>;
  /** True once the server is shutting down: events get 503 and the registry sends them again. */
  closing?(): boolean;
  /** Hands the hints on. The 200 waits for it, so a failure here is a 5xx and the registry sends the event again. */
  take(read: ReadNotifications, receivedAt: number): Promise<void> | void;
}

/** Which format a path serves, and for Quay the secret the path carries. Never logged: it may hold that secret. */
interface Route {
  format: WebhookFormat;
  pathSecret?: string;
}

export function routeOf(path: string): Route | undefined {
  if (path === '/events') return { format: 'distribution' };
  if (path === '/events/harbor') return { format: 'harbor' };
  if (path === '/events/github') return { format: 'github' };
  const quay = /^\/events\/quay\/([^/]*)$/.exec(path);
  return quay ? { format: 'quay', pathSecret: quay[1]! } : undefined;
}

export async function answerWebhook(request: WebhookRequest, door: WebhookDoor): Promise<WebhookResponse> {
  const { logger, metrics } = door;
  if (request.path === '/healthz' && (request.method === 'GET' || request.method === 'HEAD')) return respond(200, JSON.stringify(door.health()));
  const route = routeOf(request.path);
  if (!route) return respond(404, JSON.stringify({ error: 'not found' }));
  if (request.method !== 'POST') return respond(405, JSON.stringify({ error: 'POST only' }), { allow: 'POST' });
  // The registry keeps an event and sends it again: shutting down loses nothing.
  if (door.closing?.()) {
    door.observer?.refused(route.format, 'shutting_down');
    return respond(503, JSON.stringify({ error: 'shutting down' }), { 'retry-after': '1' });
  }
  const receivedAt = door.clock();
  let answer = await beforeBody(route, request.headers, door);
  if (!answer) {
    const body = await request.body();
    if (body === undefined) answer = tooLarge();
    else answer = (await afterBody(route, request.headers, body, door)) ?? readBody(body, receivedAt, route.format, request.headers);
  }
  if (answer.status !== 200) {
    logger.warn('webhook request refused', {
      format: route.format,
      status: answer.status,
      reason: answer.error,
      ...(request.remote !== undefined ? { remote: request.remote } : {}),
    });
    metrics.add('WebhookRefused', 1);
    door.observer?.refused(route.format, answer.reason);
    const challenge: Record<string, string> =
      answer.status === 401 && (route.format === 'distribution' || route.format === 'harbor') ? { 'www-authenticate': 'Bearer' } : {};
    return respond(answer.status, answerBody(answer), challenge);
  }
  for (const invalid of answer.read.invalid) logger.warn('event ignored: invalid', { format: route.format, ...invalid });
  await door.take(answer.read, receivedAt);
  metrics.add('WebhookEvents', accepted(answer.read));
  door.observer?.read(route.format, answer.read);
  return respond(200, answerBody(answer));
}

/** Whether `matches` holds for the secret as cached, or else as read again (a rotated secret). */
async function matchesSecret(secret: WebhookToken, matches: (value: string) => boolean): Promise<boolean> {
  if (matches(await secret.current())) return true;
  const rotated = await secret.refresh();
  return rotated !== undefined && matches(rotated);
}

/** What the headers (and the path) alone answer: authentication where the scheme allows it, then type and declared length. */
async function beforeBody(route: Route, headers: WebhookRequest['headers'], door: WebhookDoor): Promise<WebhookAnswer | undefined> {
  const format = { contentType: headers['content-type'], contentLength: headers['content-length'] };
  switch (route.format) {
    case 'distribution':
    case 'harbor': {
      const authorization = headers.authorization;
      if (!(await matchesSecret(door.token, (token) => bearerMatches(authorization, token)))) return unauthorized('missing or wrong bearer token');
      return checkFormat(format);
    }
    case 'quay':
      if (!(await matchesSecret(door.token, (token) => secretMatches(route.pathSecret, token)))) return unauthorized('wrong secret in the path');
      return checkFormat(format);
    case 'github':
      if (!door.githubSecret || (await door.githubSecret.current()) === '')
        return { status: 404, reason: 'not_configured', error: 'no GitHub webhook secret is configured' };
      // The HMAC covers the body, so it is checked once the body is read; a request without one is refused now.
      if (!GITHUB_SIGNATURE.test(headers['x-hub-signature-256'] ?? '')) return unauthorized('missing or malformed X-Hub-Signature-256');
      return checkFormat(format);
  }
}

/** Authentication that needs the body: GitHub's HMAC of it. */
async function afterBody(route: Route, headers: WebhookRequest['headers'], body: Buffer, door: WebhookDoor): Promise<WebhookAnswer | undefined> {
  if (route.format !== 'github' || !door.githubSecret) return undefined;
  const signature = headers['x-hub-signature-256'];
  if (!(await matchesSecret(door.githubSecret, (secret) => githubSignatureMatches(signature, body, secret))))
    return unauthorized('X-Hub-Signature-256 does not match the body');
  return undefined;
}

const GITHUB_SIGNATURE = /^sha256=[0-9a-f]{64}$/i;

/** Whether `X-Hub-Signature-256` is `sha256=` and the HMAC-SHA256 of the body with the secret, compared in constant time. */
export function githubSignatureMatches(signature: string | undefined, body: Buffer, secret: string): boolean {
  if (secret.length === 0 || !GITHUB_SIGNATURE.test(signature ?? '')) return false;
  const expected = createHmac('sha256', secret).update(body).digest('hex');
  return secretMatches(signature!.slice('sha256='.length).toLowerCase(), expected);
}

function unauthorized(error: string): WebhookAnswer {
  return { status: 401, reason: 'unauthorized', error };
}

/** The token is cached this long; a request with another token reads it again at most this often. */
const TOKEN_CACHE_MS = 5 * 60_000;
const TOKEN_REFRESH_MS = 30_000;

/** A token that never changes (the listener's from GEO_SYNC_WEBHOOK_TOKEN). */
export function fixedToken(value: string): WebhookToken {
  return { current: async () => value, refresh: async () => undefined };
}

/**
 * A secret kept where it can be replaced (a secret, a file), read again so a rotated one is
 * picked up without a restart. `source` names it in the error when it holds none; `optional`: an
 * empty value means "not configured" (GitHub's key absent from notify's secret), not an error.
 */
export function rereadToken(
  read: () => Promise<string>,
  source: string,
  clock: () => number = Date.now,
  { what = 'webhook token', optional = false }: { what?: string; optional?: boolean } = {},
): WebhookToken {
  let cached: { value: string; readAt: number } | undefined;
  const load = async () => {
    const value = (await read()).trim();
    // An empty token would match nothing (secretMatches refuses it), but say why every request is refused.
    if (value === '' && !optional) throw new GeoSyncError('INVALID_CONFIG', `${source} holds no ${what}`);
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
 * Whether `presented` is the secret, compared in constant time over the SHA-256 of both (equal
 * lengths whatever was sent, so neither the secret nor its length leaks). An empty secret matches nothing.
 */
export function secretMatches(presented: string | undefined, secret: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  const equal = timingSafeEqual(digest(presented ?? ''), digest(secret));
  return presented !== undefined && secret.length > 0 && equal;
}

/** Whether the Authorization header carries `Bearer <token>`. */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  return secretMatches(/^Bearer[ ]+([^\s]+)[ ]*$/i.exec(authorization ?? '')?.[1], token);
}

/**
 * What can be answered from the headers alone, before a byte of the body is read: 401 without the
 * token, 415 for a body that is not JSON, 413 for a declared length over the limit. Undefined: read
 * the body. For the bearer formats (distribution, Harbor).
 */
export function checkHeaders(headers: { authorization?: string; contentType?: string; contentLength?: string }, token: string): WebhookAnswer | undefined {
  if (!bearerMatches(headers.authorization, token)) return unauthorized('missing or wrong bearer token');
  return checkFormat(headers);
}

function checkFormat(headers: { contentType?: string | undefined; contentLength?: string | undefined }): WebhookAnswer | undefined {
  const type = (headers.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== NOTIFICATION_MEDIA_TYPE && type !== 'application/json' && !type.endsWith('+json')) {
    return { status: 415, reason: 'unsupported_media_type', error: `content type must be ${NOTIFICATION_MEDIA_TYPE} or application/json` };
  }
  const declared = Number(headers.contentLength);
  if (headers.contentLength !== undefined && Number.isFinite(declared) && declared > MAX_BODY_BYTES) return tooLarge();
  return undefined;
}

/** The body, read whole (at most MAX_BODY_BYTES), in the format its path serves: 400 when it is not one. */
export function readBody(body: Buffer, receivedAt: number, format: WebhookFormat = 'distribution', headers: WebhookRequest['headers'] = {}): WebhookAnswer {
  if (body.length > MAX_BODY_BYTES) return tooLarge();
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { status: 400, reason: 'malformed', error: 'body is not valid JSON' };
  }
  try {
    const read =
      format === 'harbor'
        ? readHarbor(json, receivedAt)
        : format === 'quay'
          ? readQuay(json, receivedAt)
          : format === 'github'
            ? readGitHub(headers['x-github-event'], json, receivedAt)
            : readNotifications(json, receivedAt);
    return { status: 200, read };
  } catch (error) {
    if (error instanceof InvalidEnvelope) return { status: 400, reason: 'malformed', error: error.message };
    throw error;
  }
}

function tooLarge(): WebhookAnswer {
  return { status: 413, reason: 'too_large', error: `body larger than ${MAX_BODY_BYTES} bytes` };
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
