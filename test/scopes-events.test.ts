// The event path under a scope: a real primary docker-registry notifies a real `geo-sync listen`,
// whose secondary keeps release tags under dr/. An event for a tag outside the scope is no work;
// one inside is replicated under the prefix. The notify function's door and the jobs cut the same way.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsRuntime } from '../shared/aws/runtime.js';
import { compileScope, silentLogger } from '../shared/engine/index.js';
import { enqueueEventJobs } from '../shared/jobs/events/enqueue.js';
import { eventJobInScope } from '../shared/jobs/events/in-scope.js';
import { noMetrics, type SyncMessage } from '../shared/jobs/index.js';
import { eventually, startListenerProcess, type RunningListener } from './support/listener.js';
import { freePort, startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

const TOKEN = randomBytes(24).toString('hex');
const DIGEST = `sha256:${'d'.repeat(64)}`;
const releases = compileScope({ tags: { include: ['^v'] }, repositories: { include: ['app', 'team/**'] } }, 'test');

let primary: TestRegistry;
let secondary: TestRegistry;
let dir: string;
let listener: RunningListener | undefined;

beforeAll(async () => {
  const port = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'scopes-events-'));
  [primary, secondary] = await Promise.all([
    startRegistry({
      notifications: { url: `http://127.0.0.1:${port}/events`, headers: { Authorization: [`Bearer ${TOKEN}`] }, timeout: '2s', backoff: '200ms' },
    }),
    startRegistry(),
  ]);
  const config = join(dir, 'secondaries.yaml');
  writeFileSync(config, `- name: dr\n  url: ${secondary.url}\n  prefix: dr/\n  tags:\n    include: ["^v"]\n`);
  listener = await startListenerProcess(port, ['--reconcile-every', '0', '--config', config, '--log-level', 'info'], {
    GEO_SYNC_PRIMARY_URL: primary.url,
    GEO_SYNC_WEBHOOK_TOKEN: TOKEN,
    GEO_SYNC_STATE_DIR: join(dir, 'state'),
  });
});

afterAll(async () => {
  listener?.child.kill('SIGTERM');
  await listener?.done;
  await Promise.all([primary?.stop(), secondary?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('geo-sync listen under a scope', () => {
  it('replicates an in-scope push under the prefix, and makes no work of an out-of-scope one', async () => {
    await pushImage(primary.url, 'app', 'pr-1');
    await eventually(
      async () => listener!.lines.some((line) => line.message === "hints outside every secondary's scope: no work"),
      20_000,
      () => JSON.stringify(listener!.lines.slice(-10)),
    );
    await pushImage(primary.url, 'app', 'v1');
    await eventually(
      async () => (await readTags(secondary.url, 'dr/app')).v1 === (await readTags(primary.url, 'app')).v1,
      20_000,
      () => JSON.stringify(listener!.lines.slice(-10)),
    );
    expect(Object.keys(await readTags(secondary.url, 'dr/app'))).toEqual(['v1']);
    expect(await readTags(secondary.url, 'app')).toEqual({});
    // One event job ran, for v1; none for pr-1.
    const replicated = listener!.lines.filter((line) => line.message === 'replicated');
    expect(replicated.map((line) => line.tags)).toEqual([1]);
  });
});

describe('the notify door and the jobs under a scope', () => {
  const hints = {
    hints: [
      { repository: 'app', tag: 'v2', at: 1 },
      { repository: 'app', tag: 'pr-2', at: 1 },
      { repository: 'elsewhere', tag: 'v2', at: 1 },
    ],
    digests: [{ repository: 'team/x', digest: DIGEST, action: 'push' as const, at: 1 }],
    ignored: 0,
    invalid: [],
  };

  it('sends jobs only for what a secondary keeps; a referrer digest under a tag scope becomes a full sync', async () => {
    const sent: SyncMessage[] = [];
    const take = enqueueEventJobs({
      syncQueue: { send: async (m) => void sent.push(...m) },
      secondaries: [{ name: 'dr', scope: releases }],
      logger: silentLogger,
      metrics: noMetrics,
    });
    await take(hints, 5);
    expect(sent).toEqual([
      { repository: 'app', secondary: 'dr', tags: ['v2'], eventAt: 1, requestedAt: 5 },
      { repository: 'team/x', secondary: 'dr', force: true, requestedAt: 5 },
    ]);
  });

  it('cuts a queued event job to the scope, or to nothing', () => {
    const job = { repository: 'app', secondary: 'dr', tags: ['pr-3', 'v3'], pushed: { 'pr-3': DIGEST, v3: DIGEST }, requestedAt: 9 };
    expect(eventJobInScope(job, releases)).toEqual({ repository: 'app', secondary: 'dr', tags: ['v3'], pushed: { v3: DIGEST }, requestedAt: 9 });
    expect(eventJobInScope({ ...job, tags: ['pr-3'] }, releases)).toBeUndefined();
    expect(eventJobInScope({ ...job, repository: 'elsewhere' }, releases)).toBeUndefined();
  });
});

describe('credentials on Lambda', () => {
  const env = {
    GEO_SYNC_TABLE: 'state',
    GEO_SYNC_PRIMARY_URL: 'https://p.example.com',
    GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'dr', url: 'https://dr.example.com' }]),
    AWS_REGION: 'us-east-1',
  };

  it('come from the secret only: one in the environment is refused at start', () => {
    expect(() => createAwsRuntime({ ...env, GEO_SYNC_PRIMARY_PASSWORD: 'hunter2' })).toThrow(
      /GEO_SYNC_PRIMARY_PASSWORD set in the environment: on Lambda, registry credentials come from the secret GEO_SYNC_CREDENTIALS_SECRET only/,
    );
    const inList = { ...env, GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'dr', url: 'https://dr.example.com', password: 'hunter2' }]) };
    expect(() => createAwsRuntime(inList)).toThrow(/GEO_SYNC_SECONDARIES gives a username or password for dr/);
    for (const run of [() => createAwsRuntime({ ...env, GEO_SYNC_PRIMARY_PASSWORD: 'hunter2' }), () => createAwsRuntime(inList)]) {
      expect(() => run()).not.toThrow(/hunter2/);
    }
    expect(() => createAwsRuntime(env)).not.toThrow();
  });
});
