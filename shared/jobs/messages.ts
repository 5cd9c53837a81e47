/** The messages that flow between fan-out, sync and verify, parsed at the edge with zod. */
import { z } from 'zod';
import { SECONDARY_NAME, describeZodIssues, invalidInput, isValidDigest, validateRepositoryName, validateTag } from '../engine/index.js';

const repositoryName = z.string().superRefine((name, ctx) => {
  try {
    validateRepositoryName(name);
  } catch (error) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: error instanceof Error ? error.message : 'invalid repository name' });
  }
});
const tagName = z.string().superRefine((tag, ctx) => {
  try {
    validateTag(tag);
  } catch (error) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: error instanceof Error ? error.message : 'invalid tag' });
  }
});
/** Most tags (and digests, counted with them) one event job carries; more pending for one pair make a full sync instead. */
export const MAX_JOB_TAGS = 1000;
const secondaryName = z.string().regex(SECONDARY_NAME, 'secondary names are letters, digits, . _ -');
/** When the work was asked for (epoch ms); a deferred message keeps it. Absent: when the queue received it, or now. */
const requestedAt = z.number().int().min(0).optional();
/** The prune limit for this sync, as `geo-sync sync --max-prune`: a number from 0 to 1 (default 0.5). */
const maxPrune = z
  .number({ invalid_type_error: 'maxPrune must be a number from 0 to 1' })
  .min(0, 'maxPrune must be a number from 0 to 1')
  .max(1, 'maxPrune must be a number from 0 to 1')
  .optional();

export const SyncMessage = z
  .object({
    repository: repositoryName,
    secondary: secondaryName,
    deep: z.boolean().optional(),
    /** The retry count this delayed message was scheduled for; a stale one is dropped. */
    retry: z.number().int().min(1).optional(),
    /** How many invocations this sync has already continued through after a deadline. */
    continuation: z.number().int().min(1).optional(),
    /** Manual runs ignore the retry backoff. */
    force: z.boolean().optional(),
    requestedAt,
    /** A human's prune limit; kept by the sync's continuations, never by its retries. */
    maxPrune,
    /** An event job: only these tags, each read from the primary as it is now (shared/jobs/sync.ts). */
    tags: z.array(tagName).min(1).max(MAX_JOB_TAGS).optional(),
    /** An event job's manifests pushed or deleted by digest alone (referrers), each made as the primary holds it now. */
    digests: z.array(z.string().refine(isValidDigest, 'invalid digest')).min(1).max(MAX_JOB_TAGS).optional(),
    /** Digests push events announced for some of `tags`: the job looks again until the primary shows them. */
    pushed: z.record(tagName, z.string().refine(isValidDigest, 'invalid digest')).optional(),
    /** The earliest registry event behind the job (epoch ms), for its replication lag. */
    eventAt: z.number().int().min(0).optional(),
    /** Runs of this event job so far that left tags to do again. */
    attempt: z.number().int().min(1).optional(),
  })
  .strict();
export type SyncMessage = z.infer<typeof SyncMessage>;
/** A sync message naming tags, digests or both: an event job (`isEventJob`); any other is a full sync. */
export type EventJob = SyncMessage & ({ tags: string[] } | { digests: string[] });

export const VerifyMessage = z.object({ repository: repositoryName, secondary: secondaryName, deep: z.boolean().optional(), requestedAt }).strict();
export type VerifyMessage = z.infer<typeof VerifyMessage>;

/** A fan-out run: the whole catalog, a prefix of it, or an explicit list; `cursor` and `runId` mark a continuation. */
export const FanOutRequest = z
  .object({
    target: z.enum(['sync', 'verify']).default('sync'),
    repositories: z.array(repositoryName).min(1).max(10_000).optional(),
    prefix: z.string().min(1).max(255).optional(),
    deep: z.boolean().optional(),
    force: z.boolean().optional(),
    /** The prune limit for every sync this run sends. */
    maxPrune,
    cursor: z.string().optional(),
    runId: z.string().optional(),
    enqueued: z.number().int().min(0).optional(),
    /** Repositories each secondary's scope kept so far in this run: a scope that keeps none is named at the end. */
    kept: z.record(secondaryName, z.number().int().min(0)).optional(),
  })
  .strict()
  .refine((r) => !(r.repositories && r.prefix), { message: 'give either "repositories" or "prefix", not both' })
  .refine((r) => r.maxPrune === undefined || r.target === 'sync', { message: '"maxPrune" applies to syncs only' });
export type FanOutRequest = z.infer<typeof FanOutRequest>;

/** Direct invocation of sync or verify for one repository, on one or every secondary. */
export const DirectRequest = z
  .object({ repository: repositoryName, secondary: secondaryName.optional(), dryRun: z.boolean().optional(), deep: z.boolean().optional(), maxPrune })
  .strict();
export type DirectRequest = z.infer<typeof DirectRequest>;

/** A direct invocation of the fan-out asking for the readiness report (`geo-sync ready --json`'s shape), nothing sent. */
export const ReadyRequest = z
  .object({
    action: z.literal('ready'),
    secondary: secondaryName.optional(),
    /** The window a verification counts in, as `geo-sync ready --max-age`: `90m`, `25h`, `2d`. */
    maxAge: z
      .string()
      .regex(/^\d{1,6}[mhd]$/, 'maxAge is a duration such as 90m, 25h or 2d')
      .optional(),
  })
  .strict();
export type ReadyRequest = z.infer<typeof ReadyRequest>;

/** A direct invocation that names an action (today only `ready`); anything else is a fan-out request. */
export function isActionRequest(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'action' in event;
}

/** Parses a queue message body; a poison message becomes an INVALID_MESSAGE error naming what is wrong. */
export function parseMessage<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, body: string): T {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw invalidInput('INVALID_MESSAGE', 'message body is not valid JSON');
  }
  return parseInput(schema, json);
}

/** A queued sync or verify message; one sent without `requestedAt` was requested when the queue received it (SQS SentTimestamp, epoch ms). */
export function parseQueued<T extends { requestedAt?: number }>(
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  body: string,
  sentTimestamp: string | undefined,
): T {
  const message = parseMessage(schema, body);
  const sentAt = Number(sentTimestamp);
  return message.requestedAt === undefined && sentTimestamp && Number.isSafeInteger(sentAt) ? { ...message, requestedAt: sentAt } : message;
}

export function parseInput<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, input: unknown): T {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw invalidInput('INVALID_MESSAGE', `invalid message: ${describeZodIssues(result.error, 'message')}`);
  }
  return result.data;
}
