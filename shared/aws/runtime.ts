/**
 * Everything a Lambda handler needs, built once per container from the environment: Powertools,
 * AWS clients, the DynamoDB store, the SQS queues and registry access with credentials from
 * Secrets Manager. Handlers call `invoke` and stay one expression long.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { Context, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { DEFAULT_CONCURRENCY, GeoSyncError, describeZodIssues, errorMessage, invalidInput, mapEndpoints, type Endpoints } from '../engine/index.js';
import {
  openRegistries,
  parseDuration,
  registryCatalog,
  type Budget,
  type Catalog,
  type Queue,
  type Registries,
  type Runtime,
  DEFAULT_READY_MAX_AGE,
} from '../jobs/index.js';
import {
  lambdaEndpoints,
  lambdaRepositorySource,
  secretsExtensionCredentials,
  withCredentials,
  withGitlabToken,
  type CredentialSource,
} from './credentials.js';
import { DynamoDbStateStore } from './dynamodb-store.js';
import { createLogger, createMetrics, engineLogger, metricsPort } from './powertools.js';
import { SqsQueue } from './sqs-queue.js';

const Config = z.object({
  GEO_SYNC_TABLE: z.string().min(1),
  GEO_SYNC_SYNC_QUEUE_URL: z.string().url().optional(),
  GEO_SYNC_VERIFY_QUEUE_URL: z.string().url().optional(),
  GEO_SYNC_FAN_OUT_QUEUE_URL: z.string().url().optional(),
  GEO_SYNC_CREDENTIALS_SECRET: z.string().min(1).optional(),
  GEO_SYNC_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(DEFAULT_CONCURRENCY),
  // The fleet bound (stack parameter registryMaxInFlight) and the invocations it is split over:
  // the maximum concurrencies of the event sources that share it, as a sum (`20+10`, for sync and
  // verify; CloudFormation cannot add). Both or neither.
  GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: z.coerce.number().int().min(1).optional(),
  GEO_SYNC_INVOCATIONS_AT_ONCE: z
    .string()
    .regex(/^\s*\d+\s*(\+\s*\d+\s*)*$/, 'expected whole numbers joined by "+" (the maximum concurrencies of the functions that share the bound), e.g. 20+10')
    .transform((sum) => sum.split('+').reduce((total, part) => total + Number(part), 0))
    .pipe(z.number().int().min(1))
    .optional(),
  GEO_SYNC_REFERRERS: z.enum(['on', 'off']).default('on'),
  GEO_SYNC_CATALOG_PAGE_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
  // How recent a verification must be for readiness (stack parameter readyMaxAge), as `geo-sync ready --max-age`.
  GEO_SYNC_READY_MAX_AGE: z
    .string()
    .default(DEFAULT_READY_MAX_AGE)
    .transform((text) => parseDuration(text))
    .refine((ms) => ms !== undefined, 'expected a duration such as 90m, 25h or 2d'),
  GEO_SYNC_RETRY_BASE_SECONDS: z.coerce.number().min(0).default(60),
  GEO_SYNC_RETRY_CAP_SECONDS: z.coerce
    .number()
    .min(0)
    .default(6 * 3600),
});

export interface AwsRuntime extends Runtime {
  powertools: { logger: Logger; metrics: Metrics };
  catalogPageSize: number;
  /** The readiness window (GEO_SYNC_READY_MAX_AGE). */
  readyMaxAgeMs: number;
  /**
   * Runs one invocation with registry clients opened for it, and flushes metrics after. `catalog`
   * lists the primary's repositories from the configured source (GitLab's API with the secret's token).
   */
  invoke(context: Context, work: (registries: Registries, budget: Budget, catalog: Catalog) => Promise<unknown>): Promise<unknown>;
  /** Wraps a per-record job for Powertools Batch: a rejected record is logged clearly, then fails alone. */
  recordHandler(work: (record: SQSRecord) => Promise<unknown>): (record: SQSRecord) => Promise<unknown>;
}

export function createAwsRuntime(env: NodeJS.ProcessEnv, credentialSource?: CredentialSource): AwsRuntime {
  const parsed = Config.safeParse(env);
  if (!parsed.success) {
    throw invalidInput('INVALID_CONFIG', `invalid environment: ${describeZodIssues(parsed.error, 'environment')}`);
  }
  const config = parsed.data;
  const concurrency = invocationCeiling(config);
  const logger = createLogger();
  const metrics = createMetrics();
  const sqs = new SQSClient({});
  const queue = <M>(url: string | undefined, name: string): Queue<M> =>
    url ? new SqsQueue<M>(sqs, url) : { send: () => Promise.reject(new GeoSyncError('INVALID_CONFIG', `this function has no ${name} queue configured`)) };
  const credentials: CredentialSource =
    credentialSource ?? (config.GEO_SYNC_CREDENTIALS_SECRET ? secretsExtensionCredentials(config.GEO_SYNC_CREDENTIALS_SECRET, env) : async () => ({}));
  const endpoints = paceShared(lambdaEndpoints(env), config.GEO_SYNC_INVOCATIONS_AT_ONCE);
  const repositorySource = lambdaRepositorySource(env);
  const port = engineLogger(logger);

  const runtime: AwsRuntime = {
    store: new DynamoDbStateStore(new DynamoDBClient({}), config.GEO_SYNC_TABLE),
    syncQueue: queue(config.GEO_SYNC_SYNC_QUEUE_URL, 'sync'),
    verifyQueue: queue(config.GEO_SYNC_VERIFY_QUEUE_URL, 'verify'),
    fanOutQueue: queue(config.GEO_SYNC_FAN_OUT_QUEUE_URL, 'fan-out'),
    logger: port,
    metrics: metricsPort(metrics),
    clock: Date.now,
    random: Math.random,
    retry: { baseMs: config.GEO_SYNC_RETRY_BASE_SECONDS * 1000, capMs: config.GEO_SYNC_RETRY_CAP_SECONDS * 1000 },
    concurrency,
    referrers: config.GEO_SYNC_REFERRERS === 'on',
    catalogPageSize: config.GEO_SYNC_CATALOG_PAGE_SIZE,
    readyMaxAgeMs: config.GEO_SYNC_READY_MAX_AGE!,
    powertools: { logger, metrics },

    async invoke(context, work) {
      logger.addContext(context);
      const secret = await credentials();
      const registries = openRegistries(withCredentials(endpoints, secret.registries), { concurrency, logger: port, metrics: metricsPort(metrics) });
      const catalog = registryCatalog(registries, withGitlabToken(repositorySource, secret));
      try {
        return await work(registries, { remainingMs: context.getRemainingTimeInMillis() }, catalog);
      } finally {
        await registries.close();
        if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
      }
    },

    recordHandler(work) {
      return async (record) => {
        try {
          return await work(record);
        } catch (error) {
          const code = error instanceof GeoSyncError ? error.code : 'INTERNAL';
          // A poison message fails alone; SQS redrives it to the dead-letter queue after maxReceiveCount.
          logger.error('message rejected', {
            messageId: record.messageId,
            receiveCount: record.attributes.ApproximateReceiveCount,
            code,
            error: errorMessage(error),
          });
          if (code === 'INVALID_MESSAGE' || code === 'UNKNOWN_SECONDARY') metrics.addMetric('PoisonMessages', 'Count', 1);
          throw error;
        }
      };
    },
  };
  return runtime;
}

/**
 * Requests in flight this invocation may put on each registry: GEO_SYNC_CONCURRENCY, or its share
 * of the fleet bound when lower. The share is a static split: GEO_SYNC_REGISTRY_MAX_IN_FLIGHT over
 * the most invocations that run at once (GEO_SYNC_INVOCATIONS_AT_ONCE, the sum of the sync and
 * verify functions' maximum concurrencies). It needs no coordination and no request to anything;
 * its price is that an invocation running alone still takes only its share.
 */
function invocationCeiling(config: z.infer<typeof Config>): number {
  const { GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: registryMaxInFlight, GEO_SYNC_INVOCATIONS_AT_ONCE: invocationsAtOnce } = config;
  if (registryMaxInFlight === undefined && invocationsAtOnce === undefined) return config.GEO_SYNC_CONCURRENCY;
  if (registryMaxInFlight === undefined || invocationsAtOnce === undefined) {
    throw invalidInput('INVALID_CONFIG', 'invalid environment: GEO_SYNC_REGISTRY_MAX_IN_FLIGHT and GEO_SYNC_INVOCATIONS_AT_ONCE go together; only one is set');
  }
  const share = Math.floor(registryMaxInFlight / invocationsAtOnce);
  if (share < 1) {
    throw invalidInput(
      'INVALID_CONFIG',
      `invalid environment: GEO_SYNC_REGISTRY_MAX_IN_FLIGHT=${registryMaxInFlight} leaves no request for each of ${invocationsAtOnce} invocations at once (GEO_SYNC_INVOCATIONS_AT_ONCE)`,
    );
  }
  return Math.min(share, config.GEO_SYNC_CONCURRENCY);
}

/**
 * Each registry's `requestsPerSecond` is the fleet's, as `registryMaxInFlight` is: every invocation
 * that may run at once takes an equal static share of it (the sum GEO_SYNC_INVOCATIONS_AT_ONCE),
 * so 30 invocations at once never send more than the rate the operator set for the registry.
 * Without that sum (one function run by hand), the rate is the invocation's.
 */
export function paceShared(endpoints: Endpoints, invocationsAtOnce: number | undefined): Endpoints {
  if (invocationsAtOnce === undefined) return endpoints;
  return mapEndpoints(endpoints, (endpoint) =>
    endpoint.requestsPerSecond === undefined ? endpoint : { ...endpoint, requestsPerSecond: endpoint.requestsPerSecond / invocationsAtOnce },
  );
}

export function isSqsEvent(event: unknown): event is { Records: SQSRecord[] } {
  return typeof event === 'object' && event !== null && Array.isArray((event as { Records?: unknown }).Records);
}
