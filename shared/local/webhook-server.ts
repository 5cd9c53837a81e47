/**
 * The listener's HTTP server: node:http in front of the webhook door, and the operator's paths of
 * a daemon beside it (`/metrics`, `/readyz`; `/healthz` is the door's). It reads a body only when
 * the door asks (after the headers pass) and never past MAX_BODY_BYTES; a refusal closes the
 * connection rather than read the rest.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../engine/index.js';
import { MAX_BODY_BYTES, answerWebhook, bearerMatches, type WebhookDoor, type WebhookRequest, type WebhookResponse, type WebhookToken } from '../jobs/index.js';

/** The paths of a daemon, served on the same port as the webhooks. */
export interface Operations {
  /** `GET /metrics`; with a token, the scrape must carry `Authorization: Bearer <token>`. */
  metrics?: { render(): Promise<{ contentType: string; body: string }>; token?: WebhookToken };
  /** `GET /readyz`: 200 when `ready` is true, 503 otherwise; the rest of the object is the body. */
  ready?(): Promise<{ ready: boolean } & Record<string, unknown>>;
  /** `GET /status` (HTML) and `GET /status.json`: guarded as `/metrics` is, by its token when it has one. */
  status?: { data(): Promise<object>; html(data: object): string };
}

export interface WebhookServer {
  /** http://host:port */
  url: string;
  /** Stops taking connections and closes the idle ones; requests in flight may still finish. */
  stopTaking(): void;
  /** Closes every connection left; resolves once the server is closed. */
  close(): Promise<void>;
}

export async function serveWebhook(door: WebhookDoor, where: { host: string; port: number }, operations: Operations = {}): Promise<WebhookServer> {
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    const request = nodeRequest(req);
    (answerOperation(request, operations) ?? answerWebhook(request, door))
      .then((response) => send(res, response))
      .catch((error: unknown) => {
        door.logger.error('webhook request failed', { error: errorMessage(error) });
        if (!res.headersSent)
          send(res, { statusCode: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: 'internal error' }) });
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  const stopTaking = () => {
    stopped ??= new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
  };
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    stopTaking,
    async close() {
      stopTaking();
      server.closeAllConnections();
      await stopped;
    },
  };
}

/** `/metrics`, `/readyz`, `/status` and `/status.json` (GET or HEAD), or undefined for the webhook door. */
function answerOperation(request: WebhookRequest, { metrics, ready, status }: Operations): Promise<WebhookResponse> | undefined {
  if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
  if (request.path === '/metrics' && metrics) return scrape(request, metrics);
  if ((request.path === '/status' || request.path === '/status.json') && status) return statusPage(request, status, metrics?.token);
  if (request.path === '/readyz' && ready)
    return ready().then(({ ready: isReady, ...body }) => json(isReady ? 200 : 503, { status: isReady ? 'ready' : 'not ready', ...body }));
  return undefined;
}

async function scrape(request: WebhookRequest, metrics: NonNullable<Operations['metrics']>): Promise<WebhookResponse> {
  const refused = await refusedWithout(request, metrics.token);
  if (refused) return refused;
  const { contentType, body } = await metrics.render();
  return { statusCode: 200, headers: { 'content-type': contentType }, body };
}

async function statusPage(request: WebhookRequest, status: NonNullable<Operations['status']>, token: WebhookToken | undefined): Promise<WebhookResponse> {
  const refused = await refusedWithout(request, token);
  if (refused) return refused;
  const data = await status.data();
  if (request.path === '/status.json')
    return { statusCode: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' }, body: JSON.stringify(data) };
  return { statusCode: 200, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }, body: status.html(data) };
}

/** The 401 for a request without the bearer token, when there is one to ask for; undefined when it may pass. */
async function refusedWithout(request: WebhookRequest, token: WebhookToken | undefined): Promise<WebhookResponse | undefined> {
  if (!token) return undefined;
  const presented = request.headers.authorization;
  if (bearerMatches(presented, await token.current()) || bearerMatches(presented, (await token.refresh()) ?? '')) return undefined;
  return { ...json(401, { error: 'missing or wrong bearer token' }), headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' } };
}

function json(statusCode: number, body: Record<string, unknown>): WebhookResponse {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/** The headers the door reads: authentication, type and length, and GitHub's signature and event name. */
const DOOR_HEADERS = ['authorization', 'content-type', 'content-length', 'x-hub-signature-256', 'x-github-event'] as const;

function nodeRequest(req: IncomingMessage): WebhookRequest {
  const headers = Object.fromEntries(DOOR_HEADERS.map((name) => [name, req.headers[name] as string | undefined]));
  return {
    method: req.method ?? 'GET',
    path: (req.url ?? '/').split('?')[0]!,
    headers,
    body: () => readCapped(req),
    ...(req.socket.remoteAddress !== undefined ? { remote: req.socket.remoteAddress } : {}),
  };
}

/** Anything but a 200 closes the connection: the body of a refused request may be unread. */
function send(res: ServerResponse, response: WebhookResponse): void {
  const { 'content-type': contentType, ...others } = response.headers;
  res.writeHead(response.statusCode, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(response.body),
    ...(response.statusCode === 200 ? {} : { connection: 'close' }),
    ...others,
  });
  res.end(response.body);
}

/** The whole body, or undefined as soon as it passes MAX_BODY_BYTES (the rest is never read). */
function readCapped(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
