// Distance on loopback: a stand-in in front of a real registry that holds each request `ms` before
// forwarding it, so every round trip through it takes `ms` longer. All of the delay is on the way
// there; answers come back at once (the round trip is what a client feels, not how it is split).
import { createServer } from 'node:http';
import { forward, serveOnLoopback } from './loopback.js';

export interface DelayProxy {
  url: string;
  /** host:port, for clients that take a host rather than a URL (skopeo). */
  host: string;
  stop(): Promise<void>;
}

export async function startDelayProxy(targetUrl: string, ms: number): Promise<DelayProxy> {
  const target = new URL(targetUrl);
  // The request body waits unread in the socket meanwhile, so uploads are delayed alike.
  const served = await serveOnLoopback(createServer((req, res) => setTimeout(() => forward(req, res, target), ms)));
  return { ...served, host: new URL(served.url).host };
}
