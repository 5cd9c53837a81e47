// What the test stand-ins in front of a real registry share: forwarding a request unchanged, and
// serving on a free loopback port with a stop() that also closes kept-alive connections.
import { request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Sends the request on to `target` as it came, and its answer back as it came. */
export function forward(req: IncomingMessage, res: ServerResponse, target: URL, onStatus?: (status: number) => void): void {
  const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    onStatus?.(answer.statusCode ?? 502);
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.socket?.destroy());
  req.pipe(upstream);
}

/** Listens on 127.0.0.1 at a free port. */
export async function serveOnLoopback(server: Server): Promise<{ url: string; stop(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
