// An authenticating reverse proxy in front of a real registry, as nginx `auth_basic` is commonly
// set up: any request without the right Basic credentials gets 401 with a Basic challenge, on every
// path; every other request is proxied unchanged (Authorization included, as nginx passes it on).
import { createServer, type Server } from 'node:http';
import { forward, serveOnLoopback } from './loopback.js';

export interface AuthFront {
  url: string;
  /** Requests as seen, with the status the front or the registry answered. */
  log: { method: string; path: string; status: number }[];
  stop(): Promise<void>;
}

export async function startAuthFront(registryUrl: string, credentials: { username: string; password: string }, realm = 'registry'): Promise<AuthFront> {
  const target = new URL(registryUrl);
  const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  const log: AuthFront['log'] = [];

  const server: Server = createServer((req, res) => {
    const entry = { method: req.method ?? 'GET', path: req.url ?? '/', status: 0 };
    log.push(entry);
    if (req.headers.authorization !== expected) {
      req.resume();
      entry.status = 401;
      res
        .writeHead(401, { 'www-authenticate': `Basic realm="${realm}"`, 'content-type': 'text/html' })
        .end('<html><body><h1>401 Authorization Required</h1></body></html>\n');
      return;
    }
    forward(req, res, target, (status) => (entry.status = status));
  });
  return { ...(await serveOnLoopback(server)), log };
}
