/** ECR's registry tokens as the registry API's Basic credentials: fetched, cached, renewed. */
import { GeoSyncError } from '../../base/errors.js';
import { credentialsOfBasic, type Credentials, type CredentialsProvider } from '../auth.js';

/** GetAuthorizationToken's answer: base64 of `AWS:<password>`, and when it stops being accepted. */
export interface AuthorizationData {
  authorizationToken: string;
  expiresAt: Date;
}

/** Renewed this long before `expiresAt` (at most a quarter of its lifetime): a request sent just before expiry still lands. */
const RENEW_BEFORE_MS = 15 * 60_000;

interface Cached {
  credentials: Credentials;
  renewAt: number;
}

/**
 * The registry API's credentials from GetAuthorizationToken, cached per registry (one cache for
 * every client of the process, so a warm function asks once per 12 hours), renewed before they
 * expire and after a 401. The password is held here only: never logged, stored or put in an error.
 */
export class RegistryTokens implements CredentialsProvider {
  private cached: Cached | undefined;
  private pending: Promise<Cached> | undefined;

  constructor(
    /** Asks ECR; the newest client's (registryTokens), since an earlier run's client may be closed. */
    public fetch: () => Promise<AuthorizationData>,
    private readonly registry: string,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<Credentials> {
    if (this.cached && this.now() < this.cached.renewAt) return this.cached.credentials;
    // Requests waiting for a token share one GetAuthorizationToken.
    this.pending ??= this.renew().finally(() => (this.pending = undefined));
    return (await this.pending).credentials;
  }

  refused(credentials: Credentials): void {
    if (this.cached?.credentials.password === credentials.password) this.cached = undefined;
  }

  private async renew(): Promise<Cached> {
    const fetchedAt = this.now();
    const data = await this.fetch();
    const credentials = decodeAuthorizationToken(data.authorizationToken, this.registry);
    const lifetime = data.expiresAt.getTime() - fetchedAt;
    const renewAt = data.expiresAt.getTime() - Math.min(RENEW_BEFORE_MS, Math.max(0, lifetime) / 4);
    this.cached = { credentials, renewAt };
    return this.cached;
  }
}

/** `base64(user:password)` as Basic credentials; the token itself never appears in the error. */
export function decodeAuthorizationToken(token: string, registry: string): Credentials {
  const credentials = credentialsOfBasic(token);
  if (!credentials?.password) throw new GeoSyncError('AUTH_TOKEN_FAILED', `ECR gave a registry token for ${registry} that is not base64 of user:password`);
  return credentials;
}

const shared = new Map<string, RegistryTokens>();

/** The process's one token cache for a registry (its host, and the role it is reached as). */
export function registryTokens(key: string, registry: string, fetch: () => Promise<AuthorizationData>): RegistryTokens {
  let tokens = shared.get(key);
  if (!tokens) shared.set(key, (tokens = new RegistryTokens(fetch, registry)));
  tokens.fetch = fetch;
  return tokens;
}
