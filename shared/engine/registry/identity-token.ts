/**
 * Docker's identity token: an OAuth2 refresh token that a login kept in place of a password (an
 * `auths` entry's `identitytoken`, or a credential helper's answer whose Username is `<token>`).
 * It is traded at the registry's token service for access tokens, as distribution's OAuth2 token
 * spec (docs/spec/auth/oauth.md, RFC 6749 §6) says: POST to the realm of the registry's Bearer
 * challenge, form body `grant_type=refresh_token`, `refresh_token`, `service`, `client_id` and one
 * `scope` holding the scopes space-separated; the answer is JSON with `access_token`, and
 * `expires_in` and `refresh_token` where the service gives them.
 * The token itself is sent there only: never in a header, a log, a message, a metric or a record.
 */
import { GeoSyncError } from '../base/errors.js';
import type { RegistryResponse, RequestSpec } from './request.js';

/** Who asks, for the token service's audit (the spec's `client_id`: any name, unregistered). */
export const OAUTH_CLIENT_ID = 'geo-registry-sync';

/** A credential helper's Username that says its Secret is an identity token (docker's `tokenUsername`). */
export const IDENTITY_TOKEN_USERNAME = '<token>';

/** The statuses the token service's answer is read for here; others are the sender's errors (retried where they may pass). */
export const REFRESH_ANSWERS = [200, 400, 401, 403, 404, 405];

/**
 * An identity token and where it was read. The token is a private field: it is in no enumerable
 * property, so serializing or inspecting the object (a log of options, an error's context) shows
 * only its source.
 */
export class IdentityToken {
  readonly #token: string;

  constructor(
    token: string,
    /** Where it was read, for messages: `the "auths" entry for host in file`, `docker-credential-pass`. */
    readonly source: string,
  ) {
    this.#token = token;
  }

  /** The token, for the token service's form body only. */
  reveal(): string {
    return this.#token;
  }

  toJSON(): { source: string } {
    return { source: this.source };
  }
}

/** An access token granted for a refresh token, with the refresh token to use from now on. */
export interface RefreshGrant {
  accessToken: string;
  expiresInSeconds: number | undefined;
  /** The service's new refresh token, where it sent one (kept in memory for the run, never stored). */
  refreshToken: string | undefined;
}

/** The token request for `scopes` with a refresh token (oauth.md, "Example refreshing an Access Token"). */
export function refreshTokenRequest(realm: URL, service: string | undefined, scopes: string[], refreshToken: string): RequestSpec {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: OAUTH_CLIENT_ID });
  if (service) form.set('service', service);
  // One parameter, the scopes space-separated: the spec's scope list, not one parameter each.
  if (scopes.length > 0) form.set('scope', scopes.join(' '));
  return {
    method: 'POST',
    target: realm.toString(),
    scopes: [],
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: Buffer.from(form.toString()),
    expect: REFRESH_ANSWERS,
    authenticate: false,
    retry: false,
    timeoutMs: 30_000,
  };
}

/** What the message says about one refresh: which token service, which registry, which token. */
export interface RefreshContext {
  tokenService: string;
  registry: string;
  identity: IdentityToken;
}

/**
 * The token service's answer to a refresh: the grant, or an error that names the token service,
 * the registry and where the identity token was read (never the token, never the service's
 * description, which may quote what it was sent).
 */
export function readRefreshAnswer(response: RegistryResponse, context: RefreshContext): RefreshGrant {
  const { tokenService, registry, identity } = context;
  const body = parseBody(response.body);
  const oauthError = typeof body?.error === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(body.error) ? body.error : undefined;
  const answered = `HTTP ${response.status}${oauthError ? ` ${oauthError}` : ''}`;
  if (response.status === 401 || response.status === 403 || (response.status === 400 && oauthError === 'invalid_grant')) {
    return refused(
      'AUTH_REFUSED',
      `token service ${tokenService} refused the identity token for ${registry} from ${identity.source} (${answered}): log in again for a new one`,
    );
  }
  if (response.status === 404 || response.status === 405) {
    return refused(
      'AUTH_UNSUPPORTED',
      `token service ${tokenService} of ${registry} takes no OAuth2 refresh tokens (POST answered ${answered}), so the identity token from ${identity.source} cannot be used: log in with a user name and password`,
    );
  }
  if (response.status !== 200) return refused('AUTH_TOKEN_FAILED', `token service ${tokenService} answered ${answered} to the identity token for ${registry}`);
  if (!body) throw new GeoSyncError('AUTH_TOKEN_FAILED', `token service ${tokenService} answered with a body that is not JSON`);
  // `token` too: some services answer the OAuth2 POST as they answer the GET (token.md).
  const accessToken = typeof body.access_token === 'string' && body.access_token ? body.access_token : typeof body.token === 'string' ? body.token : '';
  if (!accessToken) throw new GeoSyncError('AUTH_TOKEN_FAILED', `token service ${tokenService} answered without an access_token`);
  return {
    accessToken,
    expiresInSeconds: typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : undefined,
    refreshToken: typeof body.refresh_token === 'string' && body.refresh_token ? body.refresh_token : undefined,
  };
}

function refused(code: 'AUTH_REFUSED' | 'AUTH_UNSUPPORTED' | 'AUTH_TOKEN_FAILED', message: string): never {
  throw new GeoSyncError(code, message);
}

function parseBody(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
