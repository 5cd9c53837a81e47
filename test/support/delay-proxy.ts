// Distance on loopback: a TCP relay in front of a real registry that holds every byte sent to it
// `ms` before passing it on, so every round trip through it takes `ms` longer. All of the delay is
// on the way there; answers come back at once (a client feels the round trip, not its split). It
// relays bytes without parsing HTTP, so it costs little CPU beside the registries it fronts.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface DelayProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  /** host:port, for clients that take a host rather than a URL (skopeo). */
  host: string;
  stop(): Promise<void>;
}

export async function startDelayProxy(targetUrl: string, ms: number): Promise<DelayProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    return socket;
  };
  const server = createServer((client) => {
    track(client);
    const upstream = track(connect(Number(target.port), target.hostname));
    // Chunks keep their order: each waits the same time, and timers of equal delay fire in order.
    client.on('data', (chunk) => setTimeout(() => upstream.write(chunk), ms));
    client.on('end', () => setTimeout(() => upstream.end(), ms));
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `http://${host}`,
    host,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
