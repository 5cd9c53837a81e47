// Referrers through the real sync and verify handlers (AWS SDK clients against dynalite and
// local-aws-sqs): a primary serving the referrers API (go-containerregistry's registry), one
// secondary with the API and one without (docker-registry 2.8, the tag schema).
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REFERRERS_REGISTRY_START_TIMEOUT_MS, startReferrersRegistry, type ReferrersRegistry } from '../support/referrers-registry.js';
import { pushSbom, pushSignature, readReferrers, readReferrersTagIndex } from '../support/referrers.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { pushImage } from '../support/seed.js';
import { drain, importHandlers, type Handlers } from './support/event-source.js';
import { startLocalAws, type LocalAws } from './support/local-aws.js';

let aws: LocalAws;
let primary: ReferrersRegistry;
let withApi: ReferrersRegistry;
let withoutApi: TestRegistry;
let handlers: Handlers;
const output: string[] = [];

beforeAll(async () => {
  [aws, primary, withApi, withoutApi] = await Promise.all([startLocalAws(), startReferrersRegistry(), startReferrersRegistry(), startRegistry()]);
  Object.assign(process.env, aws.env(), {
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_SECONDARIES: JSON.stringify([
      { name: 'api', url: withApi.url },
      { name: 'plain', url: withoutApi.url },
    ]),
    POWERTOOLS_LOG_LEVEL: 'INFO',
  });
  delete process.env.GEO_SYNC_CREDENTIALS_SECRET;
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => (output.push(String(chunk)), true));
  handlers = await importHandlers();
}, REFERRERS_REGISTRY_START_TIMEOUT_MS);

afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([aws?.stop(), primary?.stop(), withApi?.stop(), withoutApi?.stop()]);
});

const sources = () => [
  { name: 'sync', url: aws.queues.sync.url, arn: aws.queues.sync.arn, handler: handlers.sync, batchSize: 5 },
  { name: 'verify', url: aws.queues.verify.url, arn: aws.queues.verify.arn, handler: handlers.verify, batchSize: 10 },
];

describe('the sync and verify functions with referrers', () => {
  it('copy a signed image with its signature and SBOM to both secondaries, and record them verified', async () => {
    const repository = 'signed/app';
    const image = await pushImage(primary.url, repository, 'v1', { format: 'oci', seed: 'aws' });
    const signature = await pushSignature(primary.url, repository, image);
    const sbom = await pushSbom(primary.url, repository, image);
    for (const secondary of ['api', 'plain'])
      await aws.sqs.send(new SendMessageCommand({ QueueUrl: aws.queues.sync.url, MessageBody: JSON.stringify({ repository, secondary }) }));

    await drain(aws.sqs, sources());

    const want = [signature.digest, sbom.digest].sort();
    expect((await readReferrers(withApi.url, repository, image.digest)).map((r) => r.digest).sort()).toEqual(want);
    expect((await readReferrersTagIndex(withoutApi.url, repository, image.digest))!.map((r) => r.digest).sort()).toEqual(want);
    const items = (await aws.items()).filter((item) => item.repository === repository);
    expect(items).toHaveLength(2);
    for (const item of items) {
      expect(item).toMatchObject({
        syncState: 'synced',
        verifyState: 'synced',
        lastSync: { referrers: { copied: 2, removed: 0, failed: 0, kept: 0 } },
        checksum: { kind: 'full' },
        differences: { missing: 0, extra: 0, mismatched: 0, referrers: { missing: 0, extra: 0, mismatched: 0 } },
      });
      const checksum = item.checksum as { primary: string; secondary: string };
      expect(checksum.secondary).toBe(checksum.primary);
    }
    expect(output.join('')).toContain('"ReferrersCopied"');
  });

  it('a signature only on a secondary makes verify record a mismatch naming it', async () => {
    const repository = 'signed/forged';
    const image = await pushImage(primary.url, repository, 'v1', { format: 'oci', seed: 'forged' });
    await pushImage(withApi.url, repository, 'v1', { format: 'oci', seed: 'forged' });
    const forged = await pushSignature(withApi.url, repository, image, { seed: 'forged' });
    await aws.sqs.send(new SendMessageCommand({ QueueUrl: aws.queues.verify.url, MessageBody: JSON.stringify({ repository, secondary: 'api' }) }));

    await drain(aws.sqs, sources());

    const item = (await aws.items()).find((i) => i.repository === repository && i.secondary === 'api');
    expect(item).toMatchObject({ verifyState: 'mismatch', differences: { missing: 0, extra: 0, referrers: { extra: 1, first: [forged.digest] } } });
  });
});
