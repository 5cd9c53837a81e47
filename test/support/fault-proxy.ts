// A test-only HTTP proxy in front of a real registry that breaks chosen requests: error statuses
// (with Retry-After), connection resets, bodies cut short, slow answers; or passes the registry's
// answer on with headers of its own (a rate limit's). Fault injection is the one place a
// hand-written stand-in is right: real registries do not fail on cue.
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'truncate' }
  | { kind: 'delay'; ms: number }
  /** No fault: the registry's answer, with these headers added. */
  | { kind: 'headers'; headers: Record<string, string> };

export interface ProxiedRequest {
  method: string;
  path: string;
  /** 1-based count of requests seen so far. */
  n: number;
}

export interface FaultProxy {
  url: string;
  stats: { requests: number; faults: number; byKind: Record<string, number> };
  /** Requests as seen (`at`: performance.now() on arrival), for assertions about what the client sent. */
  log: { method: string; path: string; authorization: string | undefined; at: number; fault?: string }[];
  setRule(rule: (request: ProxiedRequest) => Fault | undefined): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(targetUrl: string, rule: (request: ProxiedRequest) => Fault | undefined = () => undefined): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  let decide = rule;
  const stats: FaultProxy['stats'] = { requests: 0, faults: 0, byKind: {} };
  const log: FaultProxy['log'] = [];

  const server: Server = createServer((req, res) => {
    const n = ++stats.requests;
    const fault = decide({ method: req.method ?? 'GET', path: req.url ?? '/', n });
    const at = performance.now();
    log.push({ method: req.method ?? 'GET', path: req.url ?? '/', authorization: req.headers.authorization, at, ...(fault ? { fault: fault.kind } : {}) });
    if (fault && fault.kind !== 'delay' && fault.kind !== 'truncate' && fault.kind !== 'headers') {
      stats.faults++;
      stats.byKind[fault.kind] = (stats.byKind[fault.kind] ?? 0) + 1;
      req.resume();
      if (fault.kind === 'reset') {
        req.socket.destroy();
        return;
      }
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected fault' }] }));
      return;
    }
    const forward = () => {
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer: IncomingMessage) => {
          if (fault?.kind === 'truncate' && Number(answer.headers['content-length'] ?? 0) > 1) {
            stats.faults++;
            stats.byKind.truncate = (stats.byKind.truncate ?? 0) + 1;
            const length = Number(answer.headers['content-length']);
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            let sent = 0;
            answer.on('data', (chunk: Buffer) => {
              const room = Math.floor(length / 2) - sent;
              if (room > 0) res.write(chunk.subarray(0, room));
              sent += chunk.length;
              if (sent >= length / 2) {
                answer.destroy();
                res.socket?.destroy();
              }
            });
            return;
          }
          res.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...(fault?.kind === 'headers' && fault.headers) });
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.socket?.destroy());
      req.pipe(upstream);
    };
    if (fault?.kind === 'delay') {
      stats.faults++;
      stats.byKind.delay = (stats.byKind.delay ?? 0) + 1;
      setTimeout(forward, fault.ms);
    } else {
      forward();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    log,
    setRule: (next) => (decide = next),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A deterministic pseudo-random source, so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
