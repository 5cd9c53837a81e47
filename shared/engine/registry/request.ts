// A request as an API method describes it, and the answer the sender gives back: plain data, so
// that the sender (transport.ts) and the authenticator (auth.ts) share them without importing each other.
import type { Readable } from 'node:stream';

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** A body that can be produced again, so a failed upload can be retried from scratch. */
export type BodySource = Buffer | (() => Promise<{ stream: Readable; length: number }>);

/** A request described by an API method: the sender does auth, retry, backoff and TLS for all. */
export interface RequestSpec {
  method: Method;
  /** A path with query (`/v2/...`), or an absolute URL the registry gave us (upload Location, Link). */
  target: string;
  scopes: string[];
  headers?: Record<string, string>;
  body?: BodySource;
  /** Statuses the caller handles; anything else is an error. */
  expect: number[];
  /** Leave the body unread for the caller (blob downloads). */
  stream?: boolean;
  /** Cap for buffered bodies. */
  maxBytes?: number;
  /** Follow redirects (blob downloads may be sent to object storage), dropping credentials off-host. */
  followRedirects?: boolean;
  /** False when a failed attempt cannot simply be resent (an upload session); the caller retries the whole operation. */
  retry?: boolean;
  /**
   * False for a probe whose failure has a fallback (GitLab's API): a registry that does not answer
   * is met again by the next request, which carries the retries, so the probe spends none.
   */
  retryUnanswered?: false;
  /**
   * False for a token request: it is how authentication happens, so it is sent with its own
   * headers only, to the token service the registry named (any host), and a 401 is its answer.
   * It holds no slot of this registry's limit and is not counted among its requests.
   */
  authenticate?: false;
  /** Headers and body timeouts in ms, instead of the connection pool's. */
  timeoutMs?: number;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | undefined>;
  /** Buffered body, or empty when streamed or HEAD. */
  body: Buffer;
  stream?: Readable;
  url: URL;
}
