/**
 * The `POST /events` endpoint, apart from any server: the local listener (node:http) and the
 * notify Lambda (function URL) both answer with these. Authentication comes first, so a request
 * without the token learns nothing and costs nothing; the answer never waits for the work.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { InvalidEnvelope, NOTIFICATION_MEDIA_TYPE, readNotifications, type ReadNotifications } from './notification.js';

/** Largest body read; registry 2.8 sends one event per request, well under a kilobyte or two. */
export const MAX_BODY_BYTES = 1024 * 1024;

export type WebhookAnswer = { status: 200; read: ReadNotifications } | { status: 400 | 401 | 413 | 415; error: string };

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

export function tooLarge(): WebhookAnswer {
  return { status: 413, error: `body larger than ${MAX_BODY_BYTES} bytes` };
}

/** The JSON body of an answer: counts only, nothing echoed from the request. */
export function answerBody(answer: WebhookAnswer): string {
  if (answer.status !== 200) return JSON.stringify({ error: answer.error });
  return JSON.stringify({ accepted: answer.read.hints.length, ignored: answer.read.ignored, invalid: answer.read.invalid.length });
}
