// What is worth asking again, shared by registry requests and token-service requests.
import type { EngineLogger } from '../base/log.js';

/** Answers that may well succeed when asked again. */
export const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const CONNECTION_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export function isConnectionError(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true;
  }
  return false;
}

/** Answers of a gateway whose registry behind it did not answer: an outage, like no answer at all. */
export const GATEWAY_STATUS = new Set([502, 504]);

/**
 * One word per outage. Each retry is logged at debug; a registry that answered before and then
 * stops answering (no connection, no response, a gateway's 502 or 504) gets one warning, and
 * one line when it answers again, at the same level, so a log that shows one shows the other. A
 * registry that has not answered yet in this run gets neither: if it never does, the error that
 * ends the run says so; if it answers on a retry, nothing was lost.
 * Throttling and server errors (429, 503, 500) are answers: their retries stay at debug.
 */
export class OutageLog {
  private answeredOnce = false;
  private down: { since: number; failures: number } | undefined;

  constructor(
    private readonly registry: string,
    private readonly logger: EngineLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A request will be sent again; `unanswered` when the registry gave no answer of its own. */
  retrying(unanswered: boolean, reason: string, detail: object): void {
    this.logger.debug('retrying request', { registry: this.registry, ...detail, reason });
    if (!unanswered) return;
    if (this.down) {
      this.down.failures++;
    } else if (this.answeredOnce) {
      this.down = { since: this.now(), failures: 1 };
      this.logger.warn('registry not answering; retrying', { registry: this.registry, reason });
    }
  }

  /** The registry answered (any status but a gateway's). */
  answered(): void {
    this.answeredOnce = true;
    if (!this.down) return;
    const { since, failures } = this.down;
    this.down = undefined;
    this.logger.warn('registry answering again', { registry: this.registry, afterMs: this.now() - since, failedAttempts: failures });
  }
}
