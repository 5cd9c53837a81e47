/**
 * Use-case behind the notify function: one request from the primary's registry to `POST /events`,
 * answered once its event jobs are on the sync queue (so a 200 means nothing can be lost; any
 * failure before that is a 5xx, and the registry sends the event again).
 */
import type { EngineLogger } from '../../engine/index.js';
import type { SyncMessage } from '../messages.js';
import type { Metrics, Queue } from '../ports.js';
import { jobsForHints } from './coalesce.js';
import { answerBody, checkHeaders, readBody, type WebhookAnswer } from './webhook.js';

export interface NotifyRequest {
  method: string;
  path: string;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  body: Buffer;
}

export interface NotifyResponse {
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

export interface NotifyPorts {
  token: WebhookToken;
  syncQueue: Queue<SyncMessage>;
  secondaries: readonly string[];
  logger: EngineLogger;
  metrics: Metrics;
  clock: () => number;
}

export async function receiveNotification(request: NotifyRequest, ports: NotifyPorts): Promise<NotifyResponse> {
  const { logger, metrics } = ports;
  if (request.path === '/healthz' && request.method === 'GET') return respond(200, JSON.stringify({ status: 'ok' }));
  if (request.path !== '/events') return respond(404, JSON.stringify({ error: 'not found' }));
  if (request.method !== 'POST') return respond(405, JSON.stringify({ error: 'POST only' }), { allow: 'POST' });
  const receivedAt = ports.clock();
  const headers = {
    authorization: request.headers.authorization,
    contentType: request.headers['content-type'],
    contentLength: request.headers['content-length'],
  };
  let early = checkHeaders(headers, await ports.token.current());
  if (early?.status === 401) {
    const rotated = await ports.token.refresh();
    if (rotated !== undefined) early = checkHeaders(headers, rotated);
  }
  const answer = early ?? readBody(request.body, receivedAt);
  if (answer.status !== 200) {
    logger.warn('webhook request refused', { status: answer.status, reason: answer.error });
    metrics.add('WebhookRefused', 1);
    return respond(answer.status, answerBody(answer), answer.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
  }
  for (const invalid of answer.read.invalid) logger.warn('event ignored: invalid', invalid);
  const jobs = jobsForHints(answer.read.hints, ports.secondaries, receivedAt);
  if (jobs.length > 0) await ports.syncQueue.send(jobs);
  metrics.add('WebhookEvents', answer.read.hints.length);
  metrics.add('EventJobsEnqueued', jobs.length);
  if (jobs.length > 0) logger.info('event jobs enqueued', { jobs: jobs.length, hints: answer.read.hints.length, ignored: answer.read.ignored });
  return respond(200, answerBody(answer));
}

function respond(statusCode: WebhookAnswer['status'] | 404 | 405, body: string, headers: Record<string, string> = {}): NotifyResponse {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body };
}
