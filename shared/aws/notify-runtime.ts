/**
 * The notify function's side of the webhook door, built once per container: Powertools, the sync
 * queue as the door's `take`, and the webhook token from Secrets Manager (through the same
 * extension as the registry credentials), re-read when a request does not match so a rotated token
 * is picked up. GitHub's HMAC secret, when used, is a second key of the same secret: no secret in
 * the environment, no second grant. No DynamoDB, no registry: notify only turns events into jobs.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { z } from 'zod';
import { describeZodIssues, ecrFromEnv, ecrHost, errorMessage, invalidInput, secondariesFromEnv } from '../engine/index.js';
import {
  enqueueEventJobs,
  readEcrImageAction,
  rereadToken,
  type EcrRegistryId,
  type ReadNotifications,
  type SyncMessage,
  type WebhookDoor,
  type WebhookRequest,
} from '../jobs/index.js';
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
  /** Takes one EventBridge ECR Image Action event of the primary's registry: its hints become event jobs, as a webhook's do. */
  takeEcrEvent(event: unknown): Promise<void>;
  /** Runs one invocation and flushes its metrics after. */
  invoke<T>(context: Context, work: () => Promise<T>): Promise<T>;
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
  const ecrPrimary = ecrPrimaryOf(env);
  const door: WebhookDoor = {
    ...ports,
    token: rereadToken(async () => tokenOf(await readToken()), `secret ${parsed.data.GEO_SYNC_WEBHOOK_SECRET}`),
    githubSecret: rereadToken(async () => keyOf(await readToken(), 'githubSecret'), `secret ${parsed.data.GEO_SYNC_WEBHOOK_SECRET}`, Date.now, {
      what: 'githubSecret',
      optional: true,
    }),
    clock: Date.now,
    health: () => ({ status: 'ok' }),
    take: enqueueEventJobs({ ...ports, syncQueue, secondaries }),
  };
  return {
    door,
    async takeEcrEvent(event) {
      const receivedAt = Date.now();
      let read: ReadNotifications;
      try {
        read = readEcrImageAction(event, ecrPrimary, receivedAt);
      } catch (error) {
        // Sent again it would read the same: logged and counted, never retried.
        ports.logger.warn('ECR event not read', { error: errorMessage(error) });
        return void ports.metrics.add('EcrEventsNotRead', 1);
      }
      if (read.invalid.length > 0) {
        ports.logger.warn('ECR event not read', { invalid: read.invalid });
        ports.metrics.add('EcrEventsNotRead', read.invalid.length);
      }
      ports.metrics.add('WebhookEvents', read.hints.length + read.digests.length);
      // A failure to enqueue throws: EventBridge's asynchronous invocation retries it.
      await door.take(read, receivedAt);
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

/**
 * The primary's ECR registry, where the primary is ECR: declared (`GEO_SYNC_PRIMARY_TYPE=ecr`, with
 * `GEO_SYNC_PRIMARY_REGISTRY_ID` and `GEO_SYNC_PRIMARY_REGION`), or read off an ECR host in
 * `GEO_SYNC_PRIMARY_URL`. Only its events carry work.
 */
export function ecrPrimaryOf(env: NodeJS.ProcessEnv): EcrRegistryId | undefined {
  const declared = ecrFromEnv(env, 'PRIMARY');
  let host: ReturnType<typeof ecrHost>;
  try {
    host = ecrHost(new URL(env.GEO_SYNC_PRIMARY_URL ?? '').host);
  } catch {
    // No URL, or not one: only a declared type makes the primary ECR then.
  }
  if (declared.type === 'registry' || (declared.type !== 'ecr' && !host)) return undefined;
  const account = declared.registryId ?? host?.registryId;
  const region = declared.region ?? host?.region ?? (env.AWS_REGION || undefined);
  return { ...(account ? { account } : {}), ...(region ? { region } : {}) };
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
