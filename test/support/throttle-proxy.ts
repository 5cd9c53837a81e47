// A test-only HTTP proxy in front of a real registry that limits upload bandwidth (request bodies,
// all connections sharing one rate), counts the bytes it forwards and logs each request. A client
// gone mid-body is passed on as such, so the registry sees the request cut.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

export interface ProxiedUpload {
  method: string;
  /** The path only: an upload Location's query carries the registry's signed state. */
  path: string;
  contentRange: string | undefined;
  /** Request body bytes forwarded to the registry so far. */
  bytes: number;
  status?: number;
}

export interface ThrottleProxy {
  url: string;
  /** Request body bytes forwarded to the registry, all requests together. */
  readonly bytesUp: number;
  log: ProxiedUpload[];
  stop(): Promise<void>;
}

export interface ThrottleOptions {
  bytesPerSecond: number;
  /** Drop `Range` from requests, as a registry (or a CDN before it) that ignores it: blob reads answer 200 with the whole blob. */
  ignoreRange?: boolean;
}

export async function startThrottleProxy(targetUrl: string, options: ThrottleOptions): Promise<ThrottleProxy> {
  const target = new URL(targetUrl);
  const log: ProxiedUpload[] = [];
  let bytesUp = 0;
  // One schedule for every connection: when the link is next free.
  let linkFreeAt = 0;

  const throttle = (entry: ProxiedUpload) =>
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        const now = Date.now();
        linkFreeAt = Math.max(linkFreeAt, now) + (chunk.length * 1000) / options.bytesPerSecond;
        setTimeout(() => {
          bytesUp += chunk.length;
          entry.bytes += chunk.length;
          callback(null, chunk);
        }, linkFreeAt - now);
      },
    });

  const server: Server = createServer((req, res) => {
    const entry: ProxiedUpload = {
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0]!,
      contentRange: req.headers['content-range'],
      bytes: 0,
    };
    log.push(entry);
    const headers = { ...req.headers };
    if (options.ignoreRange) delete headers.range;
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (answer) => {
      entry.status = answer.statusCode;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.socket?.destroy());
    // A client gone mid-body is passed on as such: the registry sees the request cut, not completed.
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
    });
    req.pipe(throttle(entry)).pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get bytesUp() {
      return bytesUp;
    },
    log,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
