// End to end on one machine: the real handlers and AWS SDK clients against dynalite and
// local-aws-sqs, a primary registry with credentials (served by a stand-in secrets extension)
// and two anonymous secondaries, all real docker-registry processes.
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { basicAuth, pushImage, pushMultiArch, readTags } from '../support/seed.js';
import { drain, lambdaContext, queueDepth, importHandlers, type Handler, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';
import { startSecretsExtension, type FakeSecretsExtension } from './support/secrets-extension.js';

const USER = 'geo';
const PASSWORD = 'pa55-never-logged';
const AUTH = basicAuth(USER, PASSWORD);
const SECRET_ID = 'geo-registry-sync/registries';

let aws: LocalAws;
let primary: TestRegistry;
let eu: TestRegistry;
let us: TestRegistry;
let extension: FakeSecretsExtension;
let handlers: Handlers;
const output: string[] = [];
/** Measured figures, printed once the output capture is off. */
const figures: string[] = [];

const REPOSITORIES = ['app/drifted', 'app/in-sync', 'app/missing', 'team/multi'];

beforeAll(async () => {
  [aws, primary, eu, us] = await Promise.all([
    startLocalAws(),
    startRegistry({ htpasswd: { username: USER, password: PASSWORD } }),
    startRegistry(),
    startRegistry(),
  ]);
  extension = await startSecretsExtension(SECRET_ID, { primary: { username: USER, password: PASSWORD } }, 'session-token');
  Object.assign(process.env, aws.env(), {
    AWS_SESSION_TOKEN: 'session-token',
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String(extension.port),
    GEO_SYNC_CREDENTIALS_SECRET: SECRET_ID,
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([
      { name: 'eu', url: eu.url },
      { name: 'us', url: us.url },
    ]),
    // Small catalog pages, so the walk really paginates.
    GEO_SYNC_CATALOG_PAGE_SIZE: '3',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  });
  // Keep what the functions print (JSON logs and EMF metrics) to assert on it, and off the test report.
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));

  // In sync already on both secondaries.
  for (const url of [primary.url, eu.url, us.url]) {
    const auth = url === primary.url ? AUTH : undefined;
    await pushImage(url, 'app/in-sync', 'v1', { auth });
    await pushImage(url, 'app/in-sync', 'v2', { auth });
  }
  // Only on the primary.
  for (const tag of ['1.0', '1.1', 'latest']) await pushImage(primary.url, 'app/missing', tag, { auth: AUTH });
  // Drifted: v2 re-pointed and an extra tag on each secondary, latest missing.
  for (const tag of ['v1', 'v2', 'latest']) await pushImage(primary.url, 'app/drifted', tag, { auth: AUTH });
  for (const url of [eu.url, us.url]) {
    await pushImage(url, 'app/drifted', 'v1');
    await pushImage(url, 'app/drifted', 'v2', { seed: 'stale' });
    await pushImage(url, 'app/drifted', 'old', { seed: 'old' });
  }
  await pushMultiArch(primary.url, 'team/multi', 'stable', 'oci', '', AUTH);

  handlers = await importHandlers();
});

afterAll(async () => {
  vi.restoreAllMocks();
  if (figures.length > 0) console.info(figures.join('\n'));
  await Promise.all([aws?.stop(), primary?.stop(), eu?.stop(), us?.stop(), extension?.stop()]);
});

const sources = () => [
  { name: 'fanOut', url: aws.queues.fanOut.url, arn: aws.queues.fanOut.arn, handler: handlers.fanOut, batchSize: 1 },
  { name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, batchSize: 5 },
  { name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify, batchSize: 10 },
];
const scheduledEvent = {
  version: '0',
  id: 'e',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '123456789012',
  time: new Date().toISOString(),
  region: 'us-east-1',
  resources: [],
  detail: {},
};
const records = async () => (await aws.items()).filter((item) => item.repository !== '#fan-out');

describe('scheduled fan-out -> sync -> verify', () => {
  it("brings every repository on both secondaries to the primary's exact tags and records each pair", async () => {
    const fanOut = await handlers.fanOut(scheduledEvent, lambdaContext());
    expect(fanOut).toMatchObject({ kind: 'finished', enqueued: 8 });

    const stats = await drain(aws.sqs, sources());

    expect(stats.sync!.messages).toBe(8);
    expect(stats.verify!.messages).toBe(8);
    for (const secondary of [eu, us]) {
      for (const repository of REPOSITORIES) {
        expect(await readTags(secondary.url, repository), `${repository} on ${secondary.url}`).toEqual(await readTags(primary.url, repository, AUTH));
      }
    }
    const items = await records();
    expect(items).toHaveLength(8);
    for (const item of items) {
      expect(item).toMatchObject({ syncState: 'synced', verifyState: 'synced', retryCount: 0, differences: { missing: 0, extra: 0, mismatched: 0 } });
      const checksum = item.checksum as { primary: string; secondary: string };
      expect(checksum.secondary).toBe(checksum.primary);
      expect(item).not.toHaveProperty('leaseOwner');
      expect(item).not.toHaveProperty('nextRetryAt');
    }
    const drifted = items.find((i) => i.repository === 'app/drifted' && i.secondary === 'eu');
    expect(drifted?.lastSync).toMatchObject({ status: 'synced', copied: 1, repaired: 1, removed: 1 });
    const inSync = items.find((i) => i.repository === 'app/in-sync' && i.secondary === 'us');
    expect(inSync?.lastSync).toMatchObject({ copied: 0, repaired: 0, removed: 0, bytes: 0 });
    const checkpoint = (await aws.items()).find((i) => i.repository === '#fan-out' && i.secondary === 'sync');
    expect(checkpoint).toMatchObject({ enqueued: 8 });
    // Operators list repositories by state through the index.
    const bySyncState = await aws.dynamo.send(
      new QueryCommand({
        TableName: aws.table,
        IndexName: 'bySyncState',
        KeyConditionExpression: 'syncState = :s',
        ExpressionAttributeValues: { ':s': { S: 'synced' } },
      }),
    );
    expect(bySyncState.Count).toBe(8);
    expect(checkpoint).toHaveProperty('finishedAt');
  });

  it('a second scheduled run writes nothing and skips verification of pairs already verified', async () => {
    await handlers.fanOut(scheduledEvent, lambdaContext());
    const stats = await drain(aws.sqs, sources());

    expect(stats.sync!.messages).toBe(8);
    expect(stats.verify!.messages).toBe(0);
    for (const item of await records()) expect(item.lastSync).toMatchObject({ copied: 0, repaired: 0, removed: 0 });
  });

  it('the deep-verification schedule fans out to the verify queue, and a direct invocation verifies one repository', async () => {
    const run = await handlers.fanOut({ target: 'verify', deep: true, prefix: 'app/' }, lambdaContext());
    expect(run).toMatchObject({ kind: 'finished', enqueued: 6 });
    const stats = await drain(aws.sqs, sources());
    expect(stats.verify!.messages).toBe(6);

    const direct = (await handlers.verify({ repository: 'team/multi', secondary: 'eu' }, lambdaContext())) as {
      results: { outcome: string; report: { status: string } }[];
    };
    expect(direct.results).toMatchObject([{ secondary: 'eu', outcome: 'synced', report: { status: 'synced' } }]);
  });

  it('a direct dry-run invocation returns the plan and changes nothing', async () => {
    await pushImage(primary.url, 'app/missing', '2.0', { auth: AUTH });
    const before = await readTags(eu.url, 'app/missing');

    const result = (await handlers.sync({ repository: 'app/missing', secondary: 'eu', dryRun: true }, lambdaContext())) as {
      results: { outcome: string; report: { plan: { copy: { tag: string }[] } } }[];
    };

    expect(result.results[0]).toMatchObject({ outcome: 'planned' });
    expect(result.results[0]!.report.plan.copy.map((c) => c.tag)).toEqual(['2.0']);
    expect(await readTags(eu.url, 'app/missing')).toEqual(before);
  });

  it('the bundled artifact handles a direct sync of one repository on every secondary', async () => {
    // The esbuild bundle the deployment ships (built by the global test setup through scripts/build.mjs).
    const bundled = (await import(new URL('../../dist/functions/sync/index.mjs', import.meta.url).href)) as { handler: Handler };
    const result = (await bundled.handler({ repository: 'app/missing' }, lambdaContext())) as { results: { secondary: string; outcome: string }[] };

    expect(result.results).toEqual([
      expect.objectContaining({ secondary: 'eu', outcome: 'synced' }),
      expect.objectContaining({ secondary: 'us', outcome: 'synced' }),
    ]);
    expect(Object.keys(await readTags(us.url, 'app/missing'))).toContain('2.0');
    await drain(aws.sqs, sources());
  });

  it('a held prune guard is recorded as guard-held (not failed, no retry), counted, and verified; a manual invoke with maxPrune 1 passes it', async () => {
    await pushImage(primary.url, 'guard/app', 'v1', { auth: AUTH });
    await pushImage(eu.url, 'guard/app', 'v1');
    for (const tag of ['x1', 'x2', 'x3']) await pushImage(eu.url, 'guard/app', tag, { seed: tag });
    const item = async () => (await records()).find((i) => i.repository === 'guard/app' && i.secondary === 'eu');
    const from = output.length;

    await aws.sqs.send(new SendMessageCommand({ QueueUrl: aws.queues.sync.url, MessageBody: JSON.stringify({ repository: 'guard/app', secondary: 'eu' }) }));
    const stats = await drain(aws.sqs, sources());

    const held = await item();
    expect(held).toMatchObject({ syncState: 'guard-held', retryCount: 0, verifyState: 'mismatch', differences: { extra: 3, firstExtra: ['x1', 'x2', 'x3'] } });
    expect(String(held?.syncError)).toMatch(/^would remove 3 of 4 tags on the secondary, .*maxPrune in a manual invoke/);
    expect(held).not.toHaveProperty('nextRetryAt');
    expect(stats.verify!.messages).toBe(1);
    expect(await queueDepth(aws.sqs, aws.queues.sync.url)).toEqual({ visible: 0, inFlight: 0, delayed: 0 }); // no retry scheduled
    const emitted = output.slice(from).join('');
    expect(emitted).toContain('"SyncGuardHeld"');
    expect(emitted).not.toContain('"SyncFailed"');
    const bySyncState = await aws.dynamo.send(
      new QueryCommand({
        TableName: aws.table,
        IndexName: 'bySyncState',
        KeyConditionExpression: 'syncState = :s',
        ExpressionAttributeValues: { ':s': { S: 'guard-held' } },
      }),
    );
    expect(bySyncState.Items?.map((i) => i.repository?.S)).toEqual(['guard/app']);
    expect(Object.keys(await readTags(eu.url, 'guard/app')).sort()).toEqual(['v1', 'x1', 'x2', 'x3']);

    type Direct = { results: { secondary: string; outcome: string; report: { guard?: { reason: string }; done: { removed: string[] } } }[] };
    const again = (await handlers.sync({ repository: 'guard/app', secondary: 'eu' }, lambdaContext())) as Direct;
    const plan = (await handlers.sync({ repository: 'guard/app', secondary: 'eu', dryRun: true, maxPrune: 1 }, lambdaContext())) as Direct;
    expect(again.results[0]).toMatchObject({ outcome: 'guard-held', report: { guard: { reason: expect.stringMatching(/would remove 3 of 4/) } } });
    expect(plan.results[0]!.report).not.toHaveProperty('guard');

    const passed = (await handlers.sync({ repository: 'guard/app', secondary: 'eu', maxPrune: 1 }, lambdaContext())) as Direct;

    expect(passed.results).toMatchObject([{ secondary: 'eu', outcome: 'synced', report: { done: { removed: ['x1', 'x2', 'x3'] } } }]);
    expect(await readTags(eu.url, 'guard/app')).toEqual(await readTags(primary.url, 'guard/app', AUTH));
    await drain(aws.sqs, sources());
    const healed = await item();
    expect(healed).toMatchObject({ syncState: 'synced', verifyState: 'synced', retryCount: 0 });
    expect(healed).not.toHaveProperty('syncError');
  });

  it('credentials come from the secret and never reach logs or stored items', async () => {
    expect(extension.requests).toBeGreaterThan(0);
    const printed = output.join('');
    expect(printed).toContain('"_aws"'); // EMF metrics were emitted
    expect(printed).toContain('"SyncSucceeded"');
    expect(printed).not.toContain(PASSWORD);
    expect(JSON.stringify(await aws.items())).not.toContain(PASSWORD);
  });

  it('measures the fan-out enqueue rate against local SQS', async () => {
    const repositories = Array.from({ length: 2_000 }, (_, i) => `load/repo-${String(i).padStart(5, '0')}`);
    const started = performance.now();
    const result = await handlers.fanOut({ repositories }, lambdaContext());
    const seconds = (performance.now() - started) / 1000;

    expect(result).toMatchObject({ kind: 'finished', enqueued: 4_000 });
    expect((await queueDepth(aws.sqs, aws.queues.sync.url)).visible).toBe(4_000);
    figures.push(`fan-out enqueue rate: 4000 messages in ${seconds.toFixed(2)} s = ${Math.round(4_000 / seconds)} messages/s`);
  });
});
