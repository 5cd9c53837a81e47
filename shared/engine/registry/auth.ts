import { GeoSyncError, RegistryError } from '../base/errors.js';
import { IdentityToken, readRefreshAnswer, refreshTokenRequest } from './identity-token.js';
import { RETRYABLE_STATUS, isConnectionError } from './retry.js';
import type { RegistryResponse, RequestSpec } from './request.js';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Credentials that are fetched, not configured (ECR's registry tokens, which expire): `get` answers
 * from its cache and renews it before it expires; `refused` is told of credentials the registry
 * answered 401 to, so that the next `get` fetches new ones. They are sent from the first request.
 */
export interface CredentialsProvider {
  get(): Promise<Credentials>;
  refused(credentials: Credentials): void;
}

/** What a registry is signed in with: a user name and password, fetched credentials, or docker's identity token (identity-token.ts). */
export type RegistryCredentials = Credentials | CredentialsProvider | IdentityToken;

function isProvider(credentials: RegistryCredentials | undefined): credentials is CredentialsProvider {
  return credentials !== undefined && typeof (credentials as CredentialsProvider).get === 'function';
}

function basicHeaderOf(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/**
 * Basic credentials from `base64(user:password)` (docker's `auth`, ECR's registry token), split at
 * the first colon; undefined when it is not that (no colon, or an empty user). Callers say why in
 * their own words, never quoting the value.
 */
export function credentialsOfBasic(encoded: string): Credentials | undefined {
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) } : undefined;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."`; returns undefined for a header we cannot read. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*([A-Za-z][A-Za-z0-9-]*)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const rest = match[2] ?? '';
  const pair = /\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)/gy;
  let consumed = 0;
  for (let m = pair.exec(rest); m && m[0].length > 0; m = pair.exec(rest)) {
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    consumed = pair.lastIndex;
  }
  if (consumed !== rest.length) return undefined;
  return { scheme: match[1]!.toLowerCase(), params };
}

/** The transport's sender, which sends a token request (`authenticate: false`) without authenticating it. */
export type Send = (spec: RequestSpec) => Promise<RegistryResponse>;

/** Runs an operation again after transient failures (the transport's backoff, honouring Retry-After). */
export type Retry = <T>(what: string, operation: () => Promise<T>) => Promise<T>;

/** A token service's error answer, with its Retry-After so that the retry honours it. */
export class TokenServiceError extends GeoSyncError {
  constructor(
    message: string,
    retryable: boolean,
    readonly retryAfter: string | undefined,
  ) {
    super('AUTH_TOKEN_FAILED', message, { retryable });
    this.name = 'TokenServiceError';
  }
}

interface CachedToken {
  value: string;
  refreshAt: number;
}

/**
 * Answers "which Authorization header for this scope?", learning the registry's scheme from its
 * first 401. Bearer tokens are cached per scope and fetched again when they age or are refused.
 */
export class Authenticator {
  private mode: 'unknown' | 'basic' | 'bearer' = 'unknown';
  private bearer: { realm: URL; service: string | undefined } | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  /** Basic credentials, fixed or provided: none where an identity token signs in. */
  private readonly credentials: Credentials | CredentialsProvider | undefined;
  private readonly provider: CredentialsProvider | undefined;
  /** Docker's identity token: traded at the token service for access tokens, never sent to the registry. */
  private readonly identity: IdentityToken | undefined;
  /** The refresh token sent next: the identity token, or the one the token service answered with since. */
  private refreshToken: string | undefined;
  /** Renewals after a 403 without a body (`expired`: once per client). */
  private silentRenewals = 0;

  constructor(
    private readonly registryUrl: URL,
    credentials: RegistryCredentials | undefined,
    private readonly send: Send,
    private readonly retry: Retry = (_what, operation) => operation(),
    private readonly now: () => number = Date.now,
  ) {
    const identity = credentials instanceof IdentityToken;
    this.identity = identity ? credentials : undefined;
    this.refreshToken = this.identity?.reveal();
    this.credentials = identity ? undefined : credentials;
    this.provider = isProvider(this.credentials) ? this.credentials : undefined;
    // A provider's registry asks for Basic (ECR's): sending it at once saves each scope a 401.
    if (this.provider) this.mode = 'basic';
  }

  /** The header to send before knowing whether it is needed (saves a 401 round trip per scope). */
  async header(scopes: string[]): Promise<string | undefined> {
    if (this.mode === 'basic') return this.basicHeader();
    if (this.mode !== 'bearer') return undefined;
    const key = scopes.join(' ');
    const cached = this.tokens.get(key);
    if (cached && cached.refreshAt > this.now()) return `Bearer ${cached.value}`;
    return `Bearer ${(await this.fetchToken(scopes)).value}`;
  }

  /** Learns from a 401; returns false when retrying cannot help. The sender retries a request once after a 401. */
  async unauthorized(wwwAuthenticate: string | undefined, scopes: string[], sentHeader: string | undefined): Promise<boolean> {
    const challenge = parseChallenge(wwwAuthenticate);
    if (!challenge) {
      throw new GeoSyncError('AUTH_CHALLENGE_INVALID', `registry ${this.registryUrl.host} answered 401 with a missing or malformed WWW-Authenticate header`);
    }
    if (challenge.scheme === 'basic') {
      // Requests sent in parallel before the scheme was known all get a 401: each retries once with
      // the credentials; only a refusal of the credentials themselves is final.
      if (this.identity) throw this.basicRefusesIdentityToken();
      if (!this.credentials) return false;
      if (this.provider) return this.providedRefused(sentHeader);
      if (sentHeader === (await this.basicHeader())) return false;
      this.mode = 'basic';
      return true;
    }
    if (challenge.scheme !== 'bearer') {
      throw new GeoSyncError('AUTH_UNSUPPORTED', `registry ${this.registryUrl.host} asks for unsupported auth scheme ${JSON.stringify(challenge.scheme)}`);
    }
    const realm = challenge.params.realm;
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm ?? '');
    } catch {
      throw new GeoSyncError('AUTH_CHALLENGE_INVALID', `registry ${this.registryUrl.host} gave a bearer challenge without a valid realm`);
    }
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') {
      throw new GeoSyncError('AUTH_CHALLENGE_INVALID', `registry ${this.registryUrl.host} gave a token realm with scheme ${realmUrl.protocol}`);
    }
    this.mode = 'bearer';
    this.bearer = { realm: realmUrl, service: challenge.params.service };
    // The refused token (expired or revoked mid-run) is dropped, so the retry fetches a fresh one.
    const key = scopes.join(' ');
    if (sentHeader !== undefined && sentHeader === `Bearer ${this.tokens.get(key)?.value}`) this.tokens.delete(key);
    return true;
  }

  /**
   * Whether a 403 says the provided credentials expired (ECR: "Your authorization token has
   * expired"); if so they are dropped, for the request to be sent once more with new ones.
   */
  async expired(body: Buffer, sentHeader: string | undefined): Promise<boolean> {
    if (!this.provider || sentHeader === undefined) return false;
    const current = await this.provider.get();
    // Sent with credentials renewed since (requests in parallel): sent again with the new ones.
    if (sentHeader !== basicHeaderOf(current)) return true;
    // A HEAD's 403 has no body to say why: taken for an expired token once per client, so a
    // refusal for good costs one renewal, not one per request.
    const said = /authorization token has expired/i.test(body.toString('utf8'));
    if (!said && (body.length > 0 || this.silentRenewals++ > 0)) return false;
    this.provider.refused(current);
    return true;
  }

  private async basicHeader(): Promise<string | undefined> {
    if (!this.credentials) return undefined;
    return basicHeaderOf(this.provider ? await this.provider.get() : (this.credentials as Credentials));
  }

  /**
   * A provider's credentials refused (expired or revoked mid-run): they are dropped and the request
   * is sent once more with new ones; a request sent without them is sent with them.
   */
  private async providedRefused(sentHeader: string | undefined): Promise<boolean> {
    this.mode = 'basic';
    if (sentHeader === undefined) return true;
    const current = await this.provider!.get();
    if (sentHeader === basicHeaderOf(current)) this.provider!.refused(current);
    return true;
  }

  private fetchToken(scopes: string[]): Promise<CachedToken> {
    const key = scopes.join(' ');
    const inFlight = this.pending.get(key);
    if (inFlight) return inFlight;
    // Callers waiting for the same scope share one request and its retries.
    const promise = this.retry(`token for ${key || 'no scope'}`, () => this.requestToken(scopes)).finally(() => this.pending.delete(key));
    this.pending.set(key, promise);
    return promise;
  }

  private async requestToken(scopes: string[]): Promise<CachedToken> {
    const started = this.now();
    const { value, expiresInSeconds } = this.identity ? await this.refreshGrant(scopes) : await this.basicGrant(scopes);
    const lifetimeSeconds = expiresInSeconds ?? 60;
    const token = { value, refreshAt: started + lifetimeSeconds * 900 };
    this.tokens.set(scopes.join(' '), token);
    return token;
  }

  /** A token from the token service's GET (token.md), sent with the Basic credentials where there are any. */
  private async basicGrant(scopes: string[]): Promise<{ value: string; expiresInSeconds: number | undefined }> {
    const bearer = this.bearer!;
    const url = new URL(bearer.realm);
    if (bearer.service) url.searchParams.set('service', bearer.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = await this.basicHeader();
    if (basic) headers.authorization = basic;
    // Not retried here: fetchToken retries the whole request, honouring a Retry-After.
    const response = await this.send({
      method: 'GET',
      target: url.toString(),
      scopes: [],
      headers,
      expect: [200],
      authenticate: false,
      retry: false,
      timeoutMs: 30_000,
    }).catch((error: unknown) => {
      throw this.tokenFailure(url, error);
    });
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(response.body.toString('utf8')) as typeof body;
    } catch {
      throw new GeoSyncError('AUTH_TOKEN_FAILED', `token service ${url.host} answered with a body that is not JSON`);
    }
    const value = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!value) throw new GeoSyncError('AUTH_TOKEN_FAILED', `token service ${url.host} answered without a token`);
    return { value, expiresInSeconds: typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : undefined };
  }

  /** A token for docker's identity token: the OAuth2 refresh-token grant (identity-token.ts); a refusal is final. */
  private async refreshGrant(scopes: string[]): Promise<{ value: string; expiresInSeconds: number | undefined }> {
    const { realm, service } = this.bearer!;
    const response = await this.send(refreshTokenRequest(realm, service, scopes, this.refreshToken!)).catch((error: unknown) => {
      throw this.tokenFailure(realm, error);
    });
    const grant = readRefreshAnswer(response, { tokenService: realm.host, registry: this.registryUrl.host, identity: this.identity! });
    // A service that rotates refresh tokens sends the next one: kept for this run, in memory only.
    if (grant.refreshToken) this.refreshToken = grant.refreshToken;
    return { value: grant.accessToken, expiresInSeconds: grant.expiresInSeconds };
  }

  /** An identity token is an OAuth2 refresh token: a registry that asks for Basic has no token service to trade it at. */
  private basicRefusesIdentityToken(): GeoSyncError {
    return new GeoSyncError(
      'AUTH_UNSUPPORTED',
      `registry ${this.registryUrl.host} asks for Basic authentication, and the credentials for it from ${this.identity!.source} are an identity token, which only a registry with a token service (a Bearer challenge) takes: log in to it with a user name and password`,
    );
  }

  /** What a failed token request means: refused credentials are final; other answers and lost connections may be retried. */
  private tokenFailure(url: URL, error: unknown): unknown {
    if (error instanceof RegistryError) {
      if (error.status === 401 || error.status === 403) {
        return new GeoSyncError('AUTH_REFUSED', `token service ${url.host} refused the credentials for ${this.registryUrl.host} (HTTP ${error.status})`);
      }
      return new TokenServiceError(`token service ${url.host} answered HTTP ${error.status}`, RETRYABLE_STATUS.has(error.status), error.retryAfter);
    }
    if (error instanceof GeoSyncError && error.code === 'REGISTRY_UNREACHABLE') {
      const cause = error.cause;
      return new GeoSyncError('AUTH_TOKEN_UNREACHABLE', `token service ${url.host} is unreachable: ${(cause as Error).message}`, {
        retryable: isConnectionError(cause),
        cause,
      });
    }
    return error;
  }
}
