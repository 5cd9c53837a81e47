// The one sync job's pure parts, as tables: the one status of a report, and the one follow-up
// policy. Then, against two real registries, that a dry run is the plan stage's outcome itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EVERY_TAG,
  RegistryClient,
  readTagMap,
  silentLogger,
  syncStatus,
  validateRepositoryName,
  type StatusFacts,
  type SyncStatus,
} from '../shared/engine/index.js';
import { WHOLE_REPOSITORY_POLICY } from '../shared/engine/sync/whole-repository.js';
import { runSyncPipeline } from '../shared/engine/sync/pipeline.js';
import type { PipelineOptions, SyncReader } from '../shared/engine/sync/stages.js';
import { planStage } from '../shared/engine/sync/plan.js';
import { MAX_ATTEMPTS, followUps, type FollowUp, type JobLeft } from '../shared/jobs/follow-up.js';
import type { EventJob } from '../shared/jobs/messages.js';
import { newRecord, type RepositoryRecord } from '../shared/jobs/record.js';
import type { TagSyncReport } from '../shared/engine/sync/report.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage } from './support/seed.js';

const NONE: StatusFacts = { continues: false, failed: false, left: false, dryRun: false, planned: false, differences: false };

describe('syncStatus: the one status of a full and a targeted run', () => {
  it.each<[string, Partial<StatusFacts>, SyncStatus]>([
    ['nothing to say', {}, 'synced'],
    ['differences left on purpose', { differences: true }, 'differences'],
    ['failed tags', { failed: true }, 'failed'],
    ['failed tags beside differences', { failed: true, differences: true }, 'failed'],
    ['a whole run the deadline cut, whatever failed', { continues: true, failed: true }, 'incomplete'],
    ['named work left', { left: true }, 'incomplete'],
    ['named work left beside failed tags: the failure first', { left: true, failed: true }, 'failed'],
    ['a dry run that planned nothing', { dryRun: true }, 'synced'],
    ['a dry run that planned something', { dryRun: true, planned: true }, 'differences'],
    ['a dry run whose deep check failed', { dryRun: true, planned: true, failed: true }, 'failed'],
    ['a dry run is judged by its plan, not by what a run leaves', { dryRun: true, differences: true }, 'synced'],
  ])('%s', (_case, facts, expected) => {
    expect(syncStatus({ ...NONE, ...facts })).toBe(expected);
  });
});

const NOW = 1_000_000;
const CONTEXT = { now: NOW, retry: { baseMs: 10_000, capMs: 60_000 }, random: () => 0.5 };
const KEY = { repository: 'app', secondary: 'eu' };

function record(fields: Partial<RepositoryRecord>): RepositoryRecord {
  return { ...newRecord(KEY, 0), ...fields };
}

function eventReport(fields: Partial<TagSyncReport>): TagSyncReport {
  return {
    repository: 'app',
    status: 'synced',
    dryRun: false,
    plan: { copy: [], repair: [], remove: [] },
    done: { copied: [], repaired: [], removed: [] },
    failed: [],
    skipped: [],
    primaryTags: 0,
    secondaryTags: 0,
    bytesCopied: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    durationMs: 0,
    tags: [],
    unchanged: [],
    notStarted: [],
    unsettled: [],
    digestsLeft: [],
    ...fields,
  };
}

const job = (fields: Partial<EventJob> = {}): EventJob => ({ ...KEY, tags: ['v1', 'v2'], eventAt: 5, ...fields }) as EventJob;
const kinds = (sent: FollowUp[]) => sent.map((f) => f.kind);

describe('followUps: the one follow-up policy', () => {
  it.each<[string, JobLeft, FollowUp['kind'][]]>([
    ['a full sync the deadline cut continues', { kind: 'full', message: KEY, next: record({ syncState: 'pending', continuations: 2 }) }, ['continue']],
    [
      'a failed full sync is retried at its record’s time',
      { kind: 'full', message: KEY, next: record({ syncState: 'failed', retryCount: 1, nextRetryAt: new Date(NOW + 30_000).toISOString() }) },
      ['retry'],
    ],
    ['a full sync that wrote is verified', { kind: 'full', message: KEY, next: record({ syncState: 'synced', verifyState: 'pending' }) }, ['verify']],
    ['a held guard is verified, never retried', { kind: 'full', message: KEY, next: record({ syncState: 'guard-held', verifyState: 'synced' }) }, ['verify']],
    ['a verified, synced pair needs nothing', { kind: 'full', message: KEY, next: record({ syncState: 'synced', verifyState: 'synced' }) }, []],
    ['an event job that did everything needs nothing', { kind: 'event', message: job(), report: eventReport({}) }, []],
    ['tags not reached go again', { kind: 'event', message: job(), report: eventReport({ notStarted: ['v2'] }) }, ['requeue']],
    [
      'tags changed on the primary go again',
      { kind: 'event', message: job(), report: eventReport({ skipped: [{ tag: 'v1', reason: 'moved' }] }) },
      ['requeue'],
    ],
    ['unsettled tags are looked at again', { kind: 'event', message: job(), report: eventReport({ unsettled: ['v1'] }) }, ['requeue']],
    [
      'unsettled tags past the last attempt are left',
      { kind: 'event', message: job({ attempt: MAX_ATTEMPTS }), report: eventReport({ unsettled: ['v1'] }) },
      ['leave'],
    ],
    ['failed tags are retried after a backoff', { kind: 'event', message: job(), report: eventReport({ failed: [{ tag: 'v1', error: 'x' }] }) }, ['retry']],
    ['a job that threw retries all its work', { kind: 'event', message: job(), report: undefined }, ['retry']],
    ['failed tags past the last attempt escalate to a full sync', { kind: 'event', message: job({ attempt: MAX_ATTEMPTS }), report: undefined }, ['escalate']],
    ['refused deletes wait for a human', { kind: 'event', message: job(), report: eventReport({ removalRefused: { reason: 'refused', tags: ['v1'] } }) }, []],
  ])('%s', (_case, left, expected) => {
    expect(kinds(followUps(left, CONTEXT))).toEqual(expected);
  });

  it('says what each follow-up sends', () => {
    const continued = followUps(
      { kind: 'full', message: { ...KEY, deep: true, maxPrune: 0.9 }, next: record({ syncState: 'pending', continuations: 2 }) },
      CONTEXT,
    );
    expect(continued).toEqual([{ kind: 'continue', message: { ...KEY, deep: true, maxPrune: 0.9, continuation: 2 } }]);
    const retried = followUps(
      {
        kind: 'full',
        message: { ...KEY, maxPrune: 0.9 },
        next: record({ syncState: 'failed', retryCount: 1, nextRetryAt: new Date(NOW + 30_000).toISOString() }),
      },
      CONTEXT,
    );
    expect(retried).toEqual([{ kind: 'retry', message: { ...KEY, retry: 1 }, delaySeconds: 30 }]);
    const changed = followUps(
      { kind: 'event', message: job({ pushed: { v1: 'sha256:' + 'a'.repeat(64) } }), report: eventReport({ skipped: [{ tag: 'v1', reason: 'moved' }] }) },
      CONTEXT,
    );
    expect(changed).toEqual([
      { kind: 'requeue', message: { ...KEY, eventAt: 5, requestedAt: NOW, tags: ['v1'], pushed: { v1: 'sha256:' + 'a'.repeat(64) }, attempt: 2 } },
    ]);
    const escalated = followUps({ kind: 'event', message: job({ attempt: MAX_ATTEMPTS }), report: undefined }, CONTEXT);
    expect(escalated).toMatchObject([{ kind: 'escalate', message: { ...KEY, force: true } }]);
  });
});

describe('a dry run is the plan stage itself', () => {
  let registries: RegistryPair;
  let primary: RegistryClient;
  let secondary: RegistryClient;

  beforeAll(async () => {
    registries = await startRegistryPair();
    primary = new RegistryClient({ url: registries.primary.url });
    secondary = new RegistryClient({ url: registries.secondary.url });
  });

  afterAll(async () => {
    await Promise.all([primary?.close(), secondary?.close()]);
    await registries?.stop();
  });

  it('gives the plan stage’s outcome, with the guard weighed and the trees checked, and writes nothing', async () => {
    const repository = validateRepositoryName('dry/plan');
    await pushImage(registries.primary.url, repository, 'new', { seed: 'new' });
    await pushImage(registries.primary.url, repository, 'kept', { seed: 'kept' });
    await pushImage(registries.secondary.url, repository, 'kept', { seed: 'kept' });
    await pushImage(registries.secondary.url, repository, 'extra', { seed: 'extra' });
    const reader: SyncReader = {
      policy: WHOLE_REPOSITORY_POLICY,
      read: async () => ({
        primaryTags: (await readTagMap(primary, repository)) ?? new Map(),
        secondaryTags: (await readTagMap(secondary, repository)) ?? new Map(),
        secondaryHeads: [],
        secondaryIsNew: false,
        failed: [],
        skipped: [],
        notStarted: [],
      }),
      appearedOnPrimary: () => Promise.reject(new Error('a dry run asks nothing before a removal')),
      changesOnPrimary: () => Promise.reject(new Error('a dry run confirms nothing')),
    };
    const options: PipelineOptions = {
      dryRun: true,
      deep: true,
      maxPrune: 0.5,
      deadline: undefined,
      concurrency: 4,
      logger: silentLogger,
      uploads: [],
      onUploadProgress: undefined,
      onProgress: undefined,
      referrers: true,
      tags: EVERY_TAG,
    };

    const dry = await runSyncPipeline(primary, secondary, repository, reader, options);
    const planned = await planStage({ primary, secondary, repository }, reader, options);

    expect(dry).toEqual(planned.outcome);
    expect(dry.plan.copy.map((c) => c.tag)).toEqual(['new']);
    expect(dry.plan.remove.map((c) => c.tag)).toEqual(['extra']);
    expect(dry.deep).toEqual({ failed: [], missing: [] });
    expect([...((await readTagMap(secondary, repository)) ?? new Map()).keys()].sort()).toEqual(['extra', 'kept']);
  });
});
