import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { backoffDelay } from '../base/backoff.js';
import { GeoSyncError, RegistryError, aboutRegistry, invalidInput } from '../base/errors.js';
import { silentLogger, type EngineLogger } from '../base/log.js';
import { DEFAULT_CONCURRENCY } from '../base/concurrency.js';
import { Authenticator, TokenServiceError, type CredentialsProvider } from './auth.js';
import type { IdentityToken } from './identity-token.js';
import type { EcrSettings } from './ecr/settings.js';
import { AdaptiveLimit } from './limit.js';
import { RegistryPace, rateLimitBudget } from './pace.js';
import { RegistryPause, pausesRegistry } from './pause.js';
import type { TrafficStats } from './registry.js';
import type { RegistryResponse, RequestSpec } from './request.js';
import { flattenHeaders, isRedirect, readCapped, registryError } from './responses.js';
import { GATEWAY_STATUS, OutageLog, RETRYABLE_STATUS, isConnectionError, parseRetryAfter } from './retry.js';

export { isConnectionError, parseRetryAfter } from './retry.js';
export type { BodySource, Method, RegistryResponse, RequestSpec } from './request.js';

export interface RegistryEndpoint {
  /** `https://host[:port]`, or `http://` when written so. */
  url: string;
  username?: string;
  password?: string;
  /** PEM bundle of extra trusted certificate authorities. */
  caFile?: string;
  /** Set when the registry is ECR (its host, or declared): reached through ECR's API too (openRegistry). */
  ecr?: EcrSettings;
  /** The most requests a second this process sends to the registry (pace.ts); none when absent. */
  requestsPerSecond?: number;
}

export interface TransportOptions {
  /**
   * Most requests in flight (and connections) per registry host: the ceiling. The limit starts
   * at 16 (or this, when lower), grows while round trips show distance rather than queueing,
   * and falls on queueing and throttling answers (limit.ts).
   */
  concurrency?: number;
  /** Retries after the first attempt for retryable failures. */
  retries?: number;
  logger?: EngineLogger;
  /** Backoff base and cap in ms; small values make tests fast. */
  backoff?: { baseMs: number; capMs: number };
  sleep?: (ms: number) => Promise<void>;
  /** Told of each answer from this registry (`status` undefined: no answer) and the in-flight limit then; for metrics. */
  onResponse?: (observed: ObservedResponse) => void;
  /** Fetched credentials (ECR's registry tokens) or docker's identity token, instead of the endpoint's username and password. */
  credentials?: CredentialsProvider | IdentityToken;
  /** The registry's pace (pace.ts), when shared with traffic beside this transport (ECR's API) or on a test's clock. */
  pace?: RegistryPace;
}

export interface ObservedResponse {
  status: number | undefined;
  limit: number;
}

/** Answers that say "slow down": they lower the number of requests in flight. */
const THROTTLING_STATUS = new Set([429, 503]);
const ERROR_BODY_LIMIT = 64 * 1024;
const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

/**
 * Per-registry request counts: what a run cost, and proof that a no-op run wrote nothing; and the
 * in-flight limit the run reached (`limitMax`) and ended at (`limitFinal`).
 */
export const counters = (): TrafficStats => ({ requests: 0, writes: 0, retries: 0, throttled: 0, bytesUp: 0, limitMax: 0, limitFinal: 0 });

/** The one sender: every registry request goes through here. */
export class Transport {
  readonly base: URL;
  readonly stats = counters();
  private readonly dispatcher: Dispatcher;
  private readonly inFlight: AdaptiveLimit;
  private readonly pause = new RegistryPause();
  private readonly pace: RegistryPace;
  private readonly auth: Authenticator;
  private readonly retries: number;
  private readonly backoff: { baseMs: number; capMs: number };
  readonly logger: EngineLogger;
  private readonly outage: OutageLog;
  /** Set by close(): a request cut off by closing is not a registry's outage, and is not sent again. */
  private closing = false;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly onResponse: ((observed: ObservedResponse) => void) | undefined;

  constructor(endpoint: RegistryEndpoint, options: TransportOptions = {}) {
    this.base = parseRegistryUrl(endpoint.url);
    this.retries = options.retries ?? 4;
    this.backoff = options.backoff ?? { baseMs: 250, capMs: 8_000 };
    this.logger = options.logger ?? silentLogger;
    this.outage = new OutageLog(this.base.host, this.logger);
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.onResponse = options.onResponse;
    // Added to, not instead of, the public roots: Node's `ca` option would otherwise replace them.
    const ca = endpoint.caFile ? [...rootCertificates, readCaFile(endpoint.caFile)] : undefined;
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.inFlight = new AdaptiveLimit(concurrency);
    this.pace = options.pace ?? new RegistryPace(endpoint.requestsPerSecond, { registry: this.base.host, logger: this.logger });
    this.stats.limitMax = this.stats.limitFinal = this.inFlight.limit;
    this.dispatcher = new Agent({
      connections: concurrency,
      keepAliveTimeout: 30_000,
      headersTimeout: 60_000,
      bodyTimeout: 120_000,
      connect: ca ? { ca } : {},
    });
    const credentials =
      options.credentials ?? (endpoint.username !== undefined ? { username: endpoint.username, password: endpoint.password ?? '' } : undefined);
    // Token requests go through `send` too, as requests that do not authenticate themselves, and
    // back off exactly as registry requests do: one policy, one place.
    this.auth = new Authenticator(
      this.base,
      credentials,
      (spec) => this.send(spec),
      (what, operation) => this.withRetry(what, operation),
    );
  }

  /** Requests in flight now, counting streamed bodies not yet read to the end. */
  get requestsInFlight(): number {
    return this.inFlight.active;
  }

  /** Requests allowed in flight now (raised by distance, lowered by queueing and throttling answers). */
  get concurrencyLimit(): number {
    return this.inFlight.limit;
  }

  get host(): string {
    return this.base.host;
  }

  async close(): Promise<void> {
    this.closing = true;
    // With nothing in flight the idle keep-alive sockets are destroyed at once: a graceful close
    // takes them down one by one, which after a far run with hundreds open cost 50-100 ms a registry.
    if (this.inFlight.active === 0) await this.dispatcher.destroy();
    else await this.dispatcher.close();
  }

  /**
   * Sends with auth and retries; throws RegistryError for statuses the spec does not expect. Every
   * error it throws names this registry (`registry`), so the door can say where and what to try.
   */
  async send(spec: RequestSpec): Promise<RegistryResponse> {
    try {
      return await this.sendWithRetries(spec);
    } catch (error) {
      throw aboutRegistry(error, this.base.origin);
    }
  }

  private async sendWithRetries(spec: RequestSpec): Promise<RegistryResponse> {
    const toRegistry = spec.authenticate !== false;
    let url = toRegistry ? this.resolve(spec.target) : new URL(spec.target);
    let authRetried = false;
    let redirects = 0;
    for (let attempt = 0; ; attempt++) {
      const onHost = toRegistry && url.origin === this.base.origin;
      const authorization = onHost ? await this.auth.header(spec.scopes) : undefined;
      let response: Dispatcher.ResponseData;
      const ticket = toRegistry ? await this.acquire() : undefined;
      const sentAt = performance.now();
      try {
        response = await this.dispatch(spec, url, authorization);
      } catch (error) {
        this.release(ticket, false, undefined);
        if (toRegistry) this.onResponse?.({ status: undefined, limit: this.inFlight.limit });
        if (error instanceof GeoSyncError) throw error;
        const wait = this.nextWait(attempt, undefined);
        if (wait === undefined || !isConnectionError(error) || !this.replayable(spec) || spec.retryUnanswered === false) {
          throw this.unreachable(spec, url, error);
        }
        await this.waitBeforeRetry(spec, url, wait, `connection error: ${(error as Error).message}`, onHost);
        continue;
      }
      const status = response.statusCode;
      if (onHost && !GATEWAY_STATUS.has(status)) this.outage.answered();
      const headers = flattenHeaders(response.headers);
      if (onHost) this.countThrottling(status, headers['retry-after']);
      if (onHost) this.heedRemaining(headers, sentAt);
      // A body we stream up arrives at the registry's pace, not the route's: its wait is no round trip.
      const roundTripMs = typeof spec.body === 'function' ? undefined : performance.now() - sentAt;
      this.releaseWhenClosed(response.body, ticket, THROTTLING_STATUS.has(status), roundTripMs);
      if (toRegistry) this.onResponse?.({ status, limit: this.inFlight.limit });

      if (status === 401 && onHost && !authRetried && !spec.expect.includes(401)) {
        await response.body.dump();
        authRetried = true;
        if (await this.auth.unauthorized(headers['www-authenticate'], spec.scopes, authorization)) {
          attempt--;
          continue;
        }
      }
      if (spec.followRedirects && isRedirect(status) && headers.location && redirects < 5) {
        await response.body.dump();
        redirects++;
        url = new URL(headers.location, url);
        attempt--;
        continue;
      }
      if (spec.expect.includes(status)) {
        try {
          return await this.complete(spec, url, status, headers, response);
        } catch (error) {
          if (error instanceof GeoSyncError) throw error;
          // A body cut short is a transient failure like a reset connection.
          const wait = this.nextWait(attempt, undefined);
          if (wait === undefined || spec.stream || !this.replayable(spec)) throw this.unreachable(spec, url, error);
          await this.waitBeforeRetry(spec, url, wait, `body cut short: ${(error as Error).message}`, onHost);
          continue;
        }
      }
      const errorBody = await readCapped(response.body, ERROR_BODY_LIMIT).catch(() => Buffer.alloc(0));
      // ECR has answered an expired registry token with 403 rather than 401: renewed and sent again, once.
      if (status === 403 && onHost && !authRetried && (authRetried = await this.auth.expired(errorBody, authorization))) {
        attempt--;
        continue;
      }
      if (RETRYABLE_STATUS.has(status) && this.replayable(spec)) {
        const retryAfter = headers['retry-after'];
        const wait = this.nextWait(attempt, retryAfter, onHost && pausesRegistry(status, retryAfter));
        if (wait !== undefined) {
          await this.waitBeforeRetry(spec, url, wait, `HTTP ${status}`, onHost && GATEWAY_STATUS.has(status), pausesRegistry(status, retryAfter));
          continue;
        }
      }
      throw registryError(spec, url, status, errorBody, headers['retry-after'], this.base.origin);
    }
  }

  /**
   * A request stays in flight until its body is read, dumped or destroyed, not just until its
   * headers arrive: a streamed blob keeps its slot, so a limit lowered by throttling slows it too.
   */
  private releaseWhenClosed(body: Readable, ticket: number | undefined, throttled: boolean, roundTripMs: number | undefined): void {
    const release = () => this.release(ticket, throttled, roundTripMs);
    if (body.closed) release();
    else body.once('close', release);
  }

  /** A slot, once the registry is not paused (pause.ts; a slot granted during a pause waits); then its turn in the pace (pace.ts). */
  private async acquire(): Promise<number> {
    await this.pause.clear();
    const ticket = await this.inFlight.acquire();
    do {
      await this.pause.clear();
      await this.pace.take();
    } while (this.pause.paused);
    return ticket;
  }

  /** Counts 429s (the logs' summary, metrics); an answer that does not throttle ends the streak of pauses. */
  private countThrottling(status: number, retryAfter: string | undefined): void {
    if (status === 429) this.stats.throttled++;
    if (!pausesRegistry(status, retryAfter) && !THROTTLING_STATUS.has(status)) this.pause.answered();
  }

  /** `RateLimit-Remaining` below the in-flight limit: no more in flight than the registry has left, spread over its window (pace.ts). */
  private heedRemaining(headers: Record<string, string | undefined>, sentAt: number): void {
    const budget = rateLimitBudget(headers);
    if (budget === undefined) return;
    this.pace.heed(budget, budget.remaining < this.inFlight.limit, { sentAt, othersInFlight: this.inFlight.active - 1 });
    this.inFlight.holdAtMost(budget.remaining);
    this.stats.limitFinal = this.inFlight.limit;
  }

  private release(ticket: number | undefined, throttled: boolean, roundTripMs: number | undefined): void {
    if (ticket === undefined) return;
    this.inFlight.release(ticket, throttled, roundTripMs);
    this.stats.limitMax = this.inFlight.highest;
    this.stats.limitFinal = this.inFlight.limit;
  }

  /** Retries a whole operation (e.g. upload session + streamed body) with the same policy as `send`. */
  async withRetry<T>(what: string, operation: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        const retryable = error instanceof GeoSyncError ? error.retryable : isConnectionError(error);
        const retryAfter = error instanceof RegistryError || error instanceof TokenServiceError ? error.retryAfter : undefined;
        const pauses = error instanceof RegistryError && pausesRegistry(error.status, retryAfter);
        const wait = retryable ? this.nextWait(attempt, retryAfter, pauses) : undefined;
        if (wait === undefined) throw error;
        this.stats.retries++;
        const unanswered = isConnectionError(error) || (error instanceof RegistryError && GATEWAY_STATUS.has(error.status));
        this.outage.retrying(unanswered, (error as Error).message, { operation: what, attempt: attempt + 1, waitMs: wait });
        await (pauses ? this.pause.hold(this.sleep(wait)) : this.sleep(wait));
      }
    }
  }

  resolve(target: string): URL {
    const url = new URL(target, this.base);
    if (url.origin !== this.base.origin) {
      throw new GeoSyncError('FOREIGN_HOST', `registry ${this.base.host} pointed at another host (${url.host}); refusing to follow`);
    }
    return url;
  }

  private async dispatch(spec: RequestSpec, url: URL, authorization: string | undefined): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { 'user-agent': 'geo-registry-sync', ...spec.headers };
    if (authorization) headers.authorization = authorization;
    let body: Buffer | Readable | undefined;
    if (Buffer.isBuffer(spec.body)) {
      body = spec.body;
    } else if (spec.body) {
      const source = await spec.body();
      body = source.stream;
      headers['content-length'] = String(source.length);
    }
    if (spec.authenticate !== false) {
      this.stats.requests++;
      if (spec.method !== 'GET' && spec.method !== 'HEAD') this.stats.writes++;
    }
    // reset: false keeps the connection alive after HEAD; undici otherwise closes it on every HEAD.
    // The dispatcher directly, with origin and path: undici's request() would parse the URL again.
    return this.dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: spec.method as Dispatcher.HttpMethod,
      headers,
      body,
      reset: false,
      ...(spec.timeoutMs !== undefined && { headersTimeout: spec.timeoutMs, bodyTimeout: spec.timeoutMs }),
    });
  }

  private async complete(
    spec: RequestSpec,
    url: URL,
    status: number,
    headers: Record<string, string | undefined>,
    response: Dispatcher.ResponseData,
  ): Promise<RegistryResponse> {
    if (spec.stream) return { status, headers, body: Buffer.alloc(0), stream: response.body, url };
    const body = spec.method === 'HEAD' ? (await response.body.dump(), Buffer.alloc(0)) : await readCapped(response.body, spec.maxBytes ?? DEFAULT_BODY_LIMIT);
    return { status, headers, body, url };
  }

  private replayable(spec: RequestSpec): boolean {
    if (spec.retry === false) return false;
    return spec.body === undefined || Buffer.isBuffer(spec.body) || typeof spec.body === 'function';
  }

  /** The backoff (backoff.ts), or the registry's pause streak's when longer (`pauses`: pause.ts); Retry-After (seconds or HTTP date) wins when given. */
  private nextWait(attempt: number, retryAfter: string | undefined, pauses = false): number | undefined {
    if (attempt >= this.retries || this.closing) return undefined;
    const hinted = parseRetryAfter(retryAfter, Date.now());
    if (hinted !== undefined) return Math.min(hinted, 60_000);
    const own = backoffDelay(attempt, this.backoff);
    return pauses ? this.pause.atLeastStreakBackoff(own, this.backoff) : own;
  }

  /** Counts and logs a retry (an outage once: OutageLog), then sleeps `waitMs` before it; `unanswered` when the registry gave no answer. */
  private async waitBeforeRetry(spec: RequestSpec, url: URL, waitMs: number, reason: string, unanswered: boolean, pauses = false): Promise<void> {
    this.stats.retries++;
    this.outage.retrying(unanswered, reason, { method: spec.method, path: url.pathname, waitMs });
    await (pauses ? this.pause.hold(this.sleep(waitMs)) : this.sleep(waitMs));
  }

  /** No answer: the URL with its scheme, since `https://` is the default and a plain-HTTP registry refuses it. */
  private unreachable(spec: RequestSpec, url: URL, error: unknown): GeoSyncError {
    return new GeoSyncError('REGISTRY_UNREACHABLE', `${spec.method} ${url.origin}${url.pathname} failed: ${causeText(error)}`, {
      retryable: true,
      cause: error,
      registry: this.base.origin,
    });
  }
}

/** A failure as a person reads it: OpenSSL's reason without its error-stack prefix and source path. */
function causeText(error: unknown): string {
  const message = (error as Error).message;
  const openssl = /SSL routines:[^:]*:([^:]+):/.exec(message);
  return openssl ? `TLS: ${openssl[1]}` : message;
}

function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw invalidInput('INVALID_CA_FILE', `cannot read CA file ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

export function parseRegistryUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `https://${raw}`);
  } catch {
    throw invalidInput('INVALID_URL', `invalid registry URL ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalidInput('INVALID_URL', `registry URL must be https:// (or http:// when written so): ${JSON.stringify(raw)}`);
  }
  if (url.username || url.password) {
    throw invalidInput('INVALID_URL', 'registry URL must not contain credentials; use the *_USERNAME and *_PASSWORD environment variables');
  }
  return new URL(url.origin);
}
