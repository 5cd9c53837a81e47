/**
 * The notify function's side of the webhook door, built once per container: Powertools, the sync
 * queue as the door's `take`, and the webhook token from Secrets Manager (through the same
 * extension as the registry credentials), re-read when a request does not match so a rotated token
 * is picked up. GitHub's HMAC secret, when used, is a second key of the same secret: no secret in
 * the environment, no second grant. No DynamoDB, no registry: notify only turns events into jobs.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { z } from 'zod';
import { describeZodIssues, invalidInput, secondariesFromEnv } from '../engine/index.js';
import { enqueueEventJobs, rereadToken, type SyncMessage, type WebhookDoor, type WebhookRequest } from '../jobs/index.js';
import { readSecretString } from './credentials.js';
import { createLogger, createMetrics, engineLogger, metricsPort } from './powertools.js';
import { SqsQueue } from './sqs-queue.js';

const Config = z.object({
  GEO_SYNC_SYNC_QUEUE_URL: z.string().url(),
  /** Name of the Secrets Manager secret whose SecretString is the token. */
  GEO_SYNC_WEBHOOK_SECRET: z.string().min(1),
});

export interface NotifyRuntime {
  door: WebhookDoor;
  /** Runs one invocation and flushes its metrics after. */
  invoke(context: Context, work: () => Promise<APIGatewayProxyStructuredResultV2>): Promise<APIGatewayProxyStructuredResultV2>;
}

export function createNotifyRuntime(
  env: NodeJS.ProcessEnv,
  readToken: () => Promise<string | undefined> = () => readSecretString(env.GEO_SYNC_WEBHOOK_SECRET ?? '', env),
): NotifyRuntime {
  const parsed = Config.safeParse(env);
  if (!parsed.success) {
    throw invalidInput('INVALID_CONFIG', `invalid environment: ${describeZodIssues(parsed.error, 'environment')}`);
  }
  const logger = createLogger();
  const metrics = createMetrics();
  const ports = { logger: engineLogger(logger), metrics: metricsPort(metrics) };
  const syncQueue = new SqsQueue<SyncMessage>(new SQSClient({}), parsed.data.GEO_SYNC_SYNC_QUEUE_URL);
  // Only the secondaries' names and scopes: notify reads nothing from the registries.
  const secondaries = secondariesFromEnv(env);
  return {
    door: {
      ...ports,
      token: rereadToken(async () => tokenOf(await readToken()), `secret ${parsed.data.GEO_SYNC_WEBHOOK_SECRET}`),
      githubSecret: rereadToken(async () => keyOf(await readToken(), 'githubSecret'), `secret ${parsed.data.GEO_SYNC_WEBHOOK_SECRET}`, Date.now, {
        what: 'githubSecret',
        optional: true,
      }),
      clock: Date.now,
      health: () => ({ status: 'ok' }),
      take: enqueueEventJobs({ ...ports, syncQueue, secondaries }),
    },
    async invoke(context, work) {
      logger.addContext(context);
      try {
        return await work();
      } finally {
        if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
      }
    },
  };
}

/** The secret's value is the token itself, or a JSON object with a "token" key (a key/value secret in the console). */
export function tokenOf(secretString: string | undefined): string {
  const text = (secretString ?? '').trim();
  return text.startsWith('{') ? keyOf(text, 'token') : text;
}

/** One key of a key/value secret (`{"token": "...", "githubSecret": "..."}`); empty when the secret is not JSON or lacks it. */
export function keyOf(secretString: string | undefined, key: string): string {
  try {
    const value = (JSON.parse((secretString ?? '').trim()) as Record<string, unknown>)[key];
    return typeof value === 'string' ? value.trim() : '';
  } catch {
    return '';
  }
}

/** A function URL request (payload 2.0) as the door reads it: the body has already arrived whole. */
export function functionUrlRequest(event: APIGatewayProxyEventV2): WebhookRequest {
  const headers = Object.fromEntries(Object.entries(event.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]));
  const body = event.body === undefined ? Buffer.alloc(0) : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  return { method: event.requestContext.http.method, path: event.rawPath, headers, body: async () => body };
}
