// An ECR primary's EventBridge events through the real notify handler: an `ECR Image Action` of the
// primary's registry becomes an event job on (local) SQS, as a webhook's notification does; a
// failed action, or an event of another registry, becomes none. The event's shape is AWS's sample
// (Amazon ECR User Guide, "Amazon ECR events and EventBridge").
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Context } from 'aws-lambda';
import { lambdaContext } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';
import { startSecretsExtension, type FakeSecretsExtension } from './support/secrets-extension.js';

const ACCOUNT = '123456789012';
const DIGEST = `sha256:${'7f'.repeat(32)}`;
let aws: LocalAws;
let extension: FakeSecretsExtension;
let notify: (event: unknown, context: Context) => Promise<unknown>;
const output: string[] = [];

beforeAll(async () => {
  aws = await startLocalAws({ visibilityTimeout: 5 });
  extension = await startSecretsExtension('geo-registry-sync/webhook-token', 'webhook-token-0123456789abcdef', 'session-token');
  Object.assign(process.env, aws.env(), {
    AWS_SESSION_TOKEN: 'session-token',
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String(extension.port),
    GEO_SYNC_WEBHOOK_SECRET: 'geo-registry-sync/webhook-token',
    GEO_SYNC_PRIMARY_TYPE: 'ecr',
    GEO_SYNC_PRIMARY_REGISTRY_ID: ACCOUNT,
    GEO_SYNC_PRIMARY_REGION: 'us-west-2',
    GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: 'https://eu.registry.example.com', repositories: { include: ['apps/**'] } }]),
    POWERTOOLS_LOG_LEVEL: 'INFO',
  });
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));
  notify = (await import('../../functions/notify/handler.js')).handler as unknown as typeof notify;
});

afterAll(async () => {
  vi.restoreAllMocks();
  for (const name of ['GEO_SYNC_PRIMARY_TYPE', 'GEO_SYNC_PRIMARY_REGISTRY_ID', 'GEO_SYNC_PRIMARY_REGION']) delete process.env[name];
  await Promise.all([aws?.stop(), extension?.stop()]);
});

beforeEach(() => void (output.length = 0));

/** An `ECR Image Action` as EventBridge delivers it to a Lambda target. */
const ecrEvent = (detail: Record<string, string>, registry = { account: ACCOUNT, region: 'us-west-2' }) => ({
  version: '0',
  id: '13cde686-328b-6117-af20-0e5566167482',
  'detail-type': 'ECR Image Action',
  source: 'aws.ecr',
  account: registry.account,
  time: new Date(Date.now() - 2_000).toISOString(),
  region: registry.region,
  resources: [],
  detail: { result: 'SUCCESS', 'repository-name': 'apps/web', 'image-digest': DIGEST, ...detail },
});

/** Every message on the sync queue now, taken off it. */
async function takeSyncMessages(): Promise<Record<string, unknown>[]> {
  const messages: Record<string, unknown>[] = [];
  for (;;) {
    const got = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: aws.queues.sync.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (!got.Messages?.length) return messages;
    for (const message of got.Messages) {
      messages.push(JSON.parse(message.Body!) as Record<string, unknown>);
      await aws.sqs.send(new DeleteMessageCommand({ QueueUrl: aws.queues.sync.url, ReceiptHandle: message.ReceiptHandle! }));
    }
  }
}

const warnings = () => output.filter((line) => line.includes('"ECR event not read"'));

describe("an ECR primary's EventBridge events through the notify handler", () => {
  it('a PUSH of a tag becomes an event job for that tag and the pushed digest, with the event time', async () => {
    await notify(ecrEvent({ 'action-type': 'PUSH', 'image-tag': 'v1.2' }), lambdaContext(10_000, 'notify'));

    const [job, ...rest] = await takeSyncMessages();
    expect(rest).toEqual([]);
    expect(job).toMatchObject({ repository: 'apps/web', secondary: 'eu', tags: ['v1.2'], pushed: { 'v1.2': DIGEST } });
    expect(Date.now() - (job!.eventAt as number)).toBeGreaterThanOrEqual(2_000);
  });

  it('a DELETE of a tag becomes a job for the tag and its digest, which the job removes only where the primary proves it gone', async () => {
    await notify(ecrEvent({ 'action-type': 'DELETE', 'image-tag': 'old' }), lambdaContext(10_000, 'notify'));

    expect(await takeSyncMessages()).toEqual([expect.objectContaining({ repository: 'apps/web', secondary: 'eu', tags: ['old'], digests: [DIGEST] })]);
  });

  it('an image pushed by digest alone (a referrer) becomes a job for that digest', async () => {
    const { 'image-tag': _none, ...byDigest } = ecrEvent({ 'action-type': 'PUSH' }).detail as Record<string, string>;
    await notify({ ...ecrEvent({}), detail: byDigest }, lambdaContext(10_000, 'notify'));

    expect(await takeSyncMessages()).toEqual([expect.objectContaining({ repository: 'apps/web', digests: [DIGEST] })]);
  });

  it.each([
    ['a failed push', ecrEvent({ 'action-type': 'PUSH', 'image-tag': 'v2', result: 'FAILURE' }), false],
    ['an action that changes no tag', ecrEvent({ 'action-type': 'REPLICATE', 'image-tag': 'v2' }), false],
    ["another account's registry", ecrEvent({ 'action-type': 'PUSH', 'image-tag': 'v2' }, { account: '210987654321', region: 'us-west-2' }), true],
    ["the primary's account in another region", ecrEvent({ 'action-type': 'PUSH', 'image-tag': 'v2' }, { account: ACCOUNT, region: 'eu-west-1' }), true],
    ['a repository outside the scope', ecrEvent({ 'action-type': 'PUSH', 'image-tag': 'v2', 'repository-name': 'tools/ci' }), false],
  ])('%s becomes no job', async (_case, event, warned) => {
    await notify(event, lambdaContext(10_000, 'notify'));

    expect(await takeSyncMessages()).toEqual([]);
    expect(warnings().length > 0).toBe(warned);
  });

  it('a malformed ECR event is logged, not retried: the invocation succeeds and no job is sent', async () => {
    await expect(notify({ source: 'aws.ecr', 'detail-type': 'ECR Image Action', detail: {} }, lambdaContext(10_000, 'notify'))).resolves.toBeUndefined();

    expect(await takeSyncMessages()).toEqual([]);
    expect(warnings()).toHaveLength(1);
  });
});

describe("which primary's ECR events carry work", () => {
  it.each([
    [
      'an ECR host in the URL',
      { GEO_SYNC_PRIMARY_URL: 'https://123456789012.dkr.ecr.eu-central-1.amazonaws.com' },
      { account: ACCOUNT, region: 'eu-central-1' },
    ],
    ['a China-region host', { GEO_SYNC_PRIMARY_URL: 'https://123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn' }, { account: ACCOUNT, region: 'cn-north-1' }],
    ['a FIPS host', { GEO_SYNC_PRIMARY_URL: 'https://123456789012.dkr.ecr-fips.us-east-1.amazonaws.com' }, { account: ACCOUNT, region: 'us-east-1' }],
    ['a dual-stack host', { GEO_SYNC_PRIMARY_URL: 'https://123456789012.dkr-ecr.us-east-2.on.aws' }, { account: ACCOUNT, region: 'us-east-2' }],
    [
      'declared, another host',
      { GEO_SYNC_PRIMARY_URL: 'http://127.0.0.1:5000', GEO_SYNC_PRIMARY_TYPE: 'ecr', GEO_SYNC_PRIMARY_REGION: 'us-west-2' },
      { region: 'us-west-2' },
    ],
    [
      'declared, region from the function',
      { GEO_SYNC_PRIMARY_TYPE: 'ecr', GEO_SYNC_PRIMARY_REGISTRY_ID: ACCOUNT, AWS_REGION: 'ap-south-1' },
      { account: ACCOUNT, region: 'ap-south-1' },
    ],
    ['another registry', { GEO_SYNC_PRIMARY_URL: 'https://registry.example.com' }, undefined],
    [
      'an ECR host declared a plain registry',
      { GEO_SYNC_PRIMARY_URL: 'https://123456789012.dkr.ecr.us-east-1.amazonaws.com', GEO_SYNC_PRIMARY_TYPE: 'registry' },
      undefined,
    ],
    ['a look-alike host', { GEO_SYNC_PRIMARY_URL: 'https://123456789012.dkr.ecr.us-east-1.amazonaws.com.example.com' }, undefined],
  ])('%s', async (_case, env, expected) => {
    const { ecrPrimaryOf } = await import('../../shared/aws/notify-runtime.js');
    expect(ecrPrimaryOf(env)).toEqual(expected);
  });

  it('a primary type it does not know is an error naming it', async () => {
    const { ecrPrimaryOf } = await import('../../shared/aws/notify-runtime.js');
    expect(() => ecrPrimaryOf({ GEO_SYNC_PRIMARY_TYPE: 'gcr' })).toThrow(/GEO_SYNC_PRIMARY_TYPE is ecr or registry, not "gcr"/);
  });
});
