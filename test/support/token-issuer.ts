// A small bearer-token issuer for tests, as GitLab runs one: it checks Basic credentials and signs
// JWTs with repository scopes that docker-registry (`auth: token`) verifies against its cert.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createSign, randomUUID, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TokenIssuer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate the registry trusts (its `rootcertbundle`). */
  certFile: string;
  /** Every token request seen, in order (scopes asked for). */
  requests: { user: string | undefined; scopes: string[] }[];
  /** Lifetime in seconds of the tokens issued from now on. */
  setLifetime(seconds: number): void;
  stop(): Promise<void>;
}

export async function startTokenIssuer(users: Record<string, string>, options: { lifetimeSeconds?: number; service?: string } = {}): Promise<TokenIssuer> {
  const dir = mkdtempSync(join(tmpdir(), 'token-issuer-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=test-token-issuer', '-days', '2'],
    { stdio: 'ignore' },
  );
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw.toString('base64');
  const service = options.service ?? 'test-registry';
  const issuer = 'test-issuer';
  let lifetime = options.lifetimeSeconds ?? 300;
  const requests: TokenIssuer['requests'] = [];

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const user = authenticate(req.headers.authorization, users);
    const scopes = url.searchParams.getAll('scope');
    requests.push({ user: user ?? undefined, scopes });
    if (user === null) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      // Anonymous callers may pull only; named users get what they ask for.
      const granted = (actions ?? '').split(',').filter((a) => user !== undefined || a === 'pull');
      return type && name ? [{ type, name, actions: granted }] : [];
    });
    const token = signJwt({ iss: issuer, sub: user ?? '', aud: service, exp: now + lifetime, nbf: now - 5, iat: now, jti: randomUUID(), access }, key, certDer);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: lifetime, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    requests,
    setLifetime: (seconds) => (lifetime = seconds),
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** undefined: anonymous; null: wrong credentials. */
function authenticate(header: string | undefined, users: Record<string, string>): string | undefined | null {
  if (!header) return undefined;
  const match = /^Basic (.+)$/.exec(header);
  if (!match) return null;
  const [user, ...rest] = Buffer.from(match[1]!, 'base64').toString('utf8').split(':');
  return user !== undefined && users[user] !== undefined && users[user] === rest.join(':') ? user : null;
}

function signJwt(claims: object, key: ReturnType<typeof createPrivateKey>, certDer: string): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${encode({ alg: 'RS256', typ: 'JWT', x5c: [certDer] })}.${encode(claims)}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key).toString('base64url');
  return `${input}.${signature}`;
}
