/**
 * The listener's HTTP server: node:http in front of the webhook door. It reads a body only when
 * the door asks (after the headers pass) and never past MAX_BODY_BYTES; a refusal closes the
 * connection rather than read the rest.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../engine/index.js';
import { MAX_BODY_BYTES, answerWebhook, type WebhookDoor, type WebhookRequest, type WebhookResponse } from '../jobs/index.js';

export interface WebhookServer {
  /** http://host:port */
  url: string;
  /** Stops taking connections and closes the idle ones; requests in flight may still finish. */
  stopTaking(): void;
  /** Closes every connection left; resolves once the server is closed. */
  close(): Promise<void>;
}

export async function serveWebhook(door: WebhookDoor, where: { host: string; port: number }): Promise<WebhookServer> {
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    answerWebhook(nodeRequest(req), door)
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

function nodeRequest(req: IncomingMessage): WebhookRequest {
  return {
    method: req.method ?? 'GET',
    path: (req.url ?? '/').split('?')[0]!,
    headers: { authorization: req.headers.authorization, 'content-type': req.headers['content-type'], 'content-length': req.headers['content-length'] },
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
