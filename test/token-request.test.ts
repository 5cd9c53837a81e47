import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../shared/engine/index.js';

/**
 * Token requests go through the transport's one sender as requests that do not authenticate
 * themselves. A stand-in serves both the registry and its token service, so that what the token
 * service receives, and what it sends back, can be chosen and seen.
 */
let server: Server;
let base: string;
let tokenAnswer: 'token' | 'huge' = 'token';
const tokenRequests: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url?.startsWith('/token')) {
      tokenRequests.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      // Past the sender's 8 MiB cap for buffered bodies.
      res.end(tokenAnswer === 'huge' ? Buffer.alloc(9 * 1024 * 1024, 32) : JSON.stringify({ token: 'granted' }));
      return;
    }
    if (req.headers.authorization !== 'Bearer granted') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token",service="stand-in"` });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name: 'a/b', tags: ['v1'] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('token requests through the one sender', () => {
  it('sends only its own credentials, and is not counted among the registry requests', async () => {
    tokenAnswer = 'token';
    tokenRequests.length = 0;
    const client = new RegistryClient({ url: base, username: 'geo', password: 'secret' }, { retries: 0 });
    try {
      expect(await client.listTags('a/b')).toEqual(['v1']);
      expect(tokenRequests).toHaveLength(1);
      expect(tokenRequests[0]!.authorization).toBe(`Basic ${Buffer.from('geo:secret').toString('base64')}`);
      // The 401, then the same request with the token.
      expect(client.stats.requests).toBe(2);
    } finally {
      await client.close();
    }
  });

  it("reads the token service's answer with the sender's body cap", async () => {
    tokenAnswer = 'huge';
    const client = new RegistryClient({ url: base, username: 'geo', password: 'secret' }, { retries: 0 });
    try {
      await expect(client.listTags('a/b')).rejects.toMatchObject({ code: 'BODY_TOO_LARGE' });
    } finally {
      await client.close();
    }
  });
});
