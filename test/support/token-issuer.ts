// A small bearer-token issuer for tests, as GitLab runs one: it checks Basic credentials and signs
// JWTs with repository scopes that docker-registry (`auth: token`) verifies against its cert.
// It also takes the OAuth2 refresh-token grant, written from distribution's docs/spec/auth/oauth.md
// and RFC 6749 (§5.2 for errors): POST with a form body of grant_type=refresh_token, refresh_token,
// service and client_id (both required) and one space-separated `scope`; it answers access_token,
// scope, expires_in and issued_at, and 400 invalid_grant for a refresh token it does not know.
// Not modelled: the password grant, access_type=offline (it never issues refresh tokens), revocation.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createSign, randomUUID, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TokenIssuer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate the registry trusts (its `rootcertbundle`). */
  certFile: string;
  /** Every token request seen, in order (scopes asked for; `grant` and `clientId` for the OAuth2 POST). */
  requests: { user: string | undefined; scopes: string[]; grant?: string; clientId?: string }[];
  /** Lifetime in seconds of the tokens issued from now on. */
  setLifetime(seconds: number): void;
  stop(): Promise<void>;
}

export interface TokenIssuerOptions {
  lifetimeSeconds?: number;
  service?: string;
  /** Refresh tokens (docker's identity tokens) it takes, each for the user it stands for. */
  refreshTokens?: Record<string, string>;
  /** false: a service that serves only token.md's GET, answering the OAuth2 POST 405 (Allow: GET). */
  oauth?: boolean;
}

export async function startTokenIssuer(users: Record<string, string>, options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
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

  /** A JWT granting `scopes` to `user` (anonymous callers may pull only; named users get what they ask for). */
  const sign = (user: string | undefined, scopes: string[]) => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      const granted = (actions ?? '').split(',').filter((a) => user !== undefined || a === 'pull');
      return type && name ? [{ type, name, actions: granted }] : [];
    });
    return signJwt({ iss: issuer, sub: user ?? '', aud: service, exp: now + lifetime, nbf: now - 5, iat: now, jti: randomUUID(), access }, key, certDer);
  };
  const json = (res: ServerResponse, status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && options.oauth === false) {
      req.resume();
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (req.method === 'POST') {
      void readForm(req).then((form) => answerRefreshGrant(form, res));
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const user = authenticate(req.headers.authorization, users);
    const scopes = url.searchParams.getAll('scope');
    requests.push({ user: user ?? undefined, scopes });
    if (user === null) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    json(res, 200, { token: sign(user, scopes), expires_in: lifetime, issued_at: new Date().toISOString() });
  });

  /** The OAuth2 POST: only grant_type=refresh_token, with a refresh token it knows, for its own service. */
  function answerRefreshGrant(form: URLSearchParams, res: ServerResponse) {
    const grant = form.get('grant_type') ?? '';
    const clientId = form.get('client_id') ?? '';
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const user = options.refreshTokens?.[form.get('refresh_token') ?? ''];
    requests.push({ user, scopes, grant, clientId });
    if (grant !== 'refresh_token') return json(res, 400, { error: 'unsupported_grant_type' });
    if (!clientId || form.get('service') !== service || form.getAll('scope').length > 1) return json(res, 400, { error: 'invalid_request' });
    if (user === undefined) return json(res, 400, { error: 'invalid_grant', error_description: 'refresh token unknown or revoked' });
    json(res, 200, { access_token: sign(user, scopes), scope: scopes.join(' '), expires_in: lifetime, issued_at: new Date().toISOString() });
  }
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

/** A form body (application/x-www-form-urlencoded); an empty form for any other type. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const form = (req.headers['content-type'] ?? '').split(';')[0]!.trim() === 'application/x-www-form-urlencoded';
  return new URLSearchParams(form ? Buffer.concat(chunks).toString('utf8') : '');
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
