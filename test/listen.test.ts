// `geo-sync listen` end to end: a real primary docker-registry sends its notifications to the real
// listener process, which replicates to a real secondary. The listener reads the primary through a
// counting proxy, so the requests it makes there can be counted.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync, type CliResult } from './support/cli.js';
import { eventually as poll, startListenerProcess, type RunningListener } from './support/listener.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { freePort, startRegistry, type TestRegistry } from './support/registry.js';
import { deleteManifest, manifestExists, pushImage, pushManifest, readTags } from './support/seed.js';

const TOKEN = randomBytes(24).toString('hex');
const EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';

let primary: TestRegistry;
let secondary: TestRegistry;
let elsewhere: TestRegistry;
let proxy: FaultProxy;
let port: number;
let stateDir: string;
let listener: RunningListener | undefined;

async function startListener(args: string[] = [], env: Record<string, string> = {}, listenPort = port): Promise<RunningListener> {
  return startListenerProcess(listenPort, ['--reconcile-every', '0', ...args], {
    GEO_SYNC_PRIMARY_URL: proxy.url,
    GEO_SYNC_SECONDARY_URL: secondary.url,
    GEO_SYNC_WEBHOOK_TOKEN: TOKEN,
    GEO_SYNC_STATE_DIR: stateDir,
    ...env,
  });
}

async function stopListener(running: RunningListener): Promise<CliResult> {
  running.child.kill('SIGTERM');
  return running.done;
}

/** Polls until `check` holds, naming the listener's last log lines on a timeout. */
const eventually = (
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
  describe: () => Promise<string> | string = () => JSON.stringify(listener?.lines.slice(-15)),
) => poll(check, timeoutMs, describe);

/** Until the listener has nothing pending or running. */
async function idle(running: RunningListener): Promise<void> {
  await eventually(async () => {
    const health = (await (await fetch(`${running.url}/healthz`)).json()) as { pendingTags: number; running: number };
    return health.pendingTags === 0 && health.running === 0;
  });
}

const sameTags = (repository: string) => async () =>
  JSON.stringify(await readTags(secondary.url, repository)) === JSON.stringify(await readTags(primary.url, repository));

async function post(body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${listener!.url}/events`, { method: 'POST', headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    // A server that answers before reading a large body may close while we still send it.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    req.end(body);
  });
}

function forgedEvent(action: string, repository: string, tag: string, url: string) {
  return {
    id: randomBytes(8).toString('hex'),
    timestamp: new Date().toISOString(),
    action,
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 500, digest: `sha256:${'e'.repeat(64)}`, length: 500, repository, url, tag },
    request: { id: 'x', addr: '127.0.0.1', host: 'x', method: 'PUT', useragent: 'curl' },
    actor: {},
    source: { addr: 'x', instanceID: 'x' },
  };
}

beforeAll(async () => {
  port = await freePort();
  stateDir = mkdtempSync(join(tmpdir(), 'listen-state-'));
  [primary, secondary, elsewhere] = await Promise.all([
    startRegistry({
      notifications: { url: `http://127.0.0.1:${port}/events`, headers: { Authorization: [`Bearer ${TOKEN}`] }, timeout: '2s', threshold: 3, backoff: '200ms' },
    }),
    startRegistry(),
    startRegistry(),
  ]);
  proxy = await startFaultProxy(primary.url);
  listener = await startListener();
});

afterAll(async () => {
  if (listener) await stopListener(listener);
  await proxy?.stop();
  await Promise.all([primary?.stop(), secondary?.stop(), elsewhere?.stop()]);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('geo-sync listen', () => {
  it('refuses to start without GEO_SYNC_WEBHOOK_TOKEN', async () => {
    const result = await runGeoSync(['listen', '--port', '0'], {
      GEO_SYNC_PRIMARY_URL: primary.url,
      GEO_SYNC_SECONDARY_URL: secondary.url,
      GEO_SYNC_STATE_DIR: stateDir,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/GEO_SYNC_WEBHOOK_TOKEN is not set/);
  });

  it('refuses to start when GEO_SYNC_WEBHOOK_TOKEN_FILE cannot be read or holds no token', async () => {
    const empty = join(stateDir, 'empty-token');
    writeFileSync(empty, '\n');
    for (const file of [join(stateDir, 'no-such-token'), empty]) {
      const result = await runGeoSync(['listen', '--port', '0'], {
        GEO_SYNC_PRIMARY_URL: primary.url,
        GEO_SYNC_SECONDARY_URL: secondary.url,
        GEO_SYNC_STATE_DIR: stateDir,
        GEO_SYNC_WEBHOOK_TOKEN_FILE: file,
      });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/no webhook token/);
    }
  });

  it('takes the token from GEO_SYNC_WEBHOOK_TOKEN_FILE when given (read again on a mismatch, as the notify function reads its secret)', async () => {
    const file = join(stateDir, 'webhook-token');
    const fromFile = randomBytes(24).toString('hex');
    writeFileSync(file, `${fromFile}\n`);
    const other = await startListener([], { GEO_SYNC_WEBHOOK_TOKEN_FILE: file }, await freePort());
    try {
      const send = (token: string) =>
        fetch(`${other.url}/events`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': EVENTS_TYPE }, body: '{"events": []}' });
      expect((await send(fromFile)).status).toBe(200);
      expect((await send(TOKEN)).status).toBe(401);
    } finally {
      expect((await stopListener(other)).code).toBe(0);
    }
  });

  it('replicates a push, with one log line carrying its lag', async () => {
    const repository = 'listen/push';
    await pushImage(primary.url, repository, 'v1');

    await eventually(sameTags(repository));

    expect(Object.keys(await readTags(secondary.url, repository))).toEqual(['v1']);
    await eventually(async () => listener!.lines.some((l) => l.message === 'replicated' && l.repository === repository));
    const line = listener!.lines.find((l) => l.message === 'replicated' && l.repository === repository)!;
    expect(line).toMatchObject({ secondary: 'secondary', status: 'synced', copied: ['v1'], lagSeconds: expect.any(Number) });
  });

  it('repairs a moved tag', async () => {
    const repository = 'listen/moved';
    await pushImage(primary.url, repository, 'latest', { seed: 'one' });
    await eventually(sameTags(repository));
    const moved = await pushImage(primary.url, repository, 'latest', { seed: 'two' });

    await eventually(async () => (await readTags(secondary.url, repository)).latest === moved.digest);
  });

  it('a digest delete on the primary removes exactly its tags on the secondary', async () => {
    const repository = 'listen/digest-delete';
    const doomed = await pushImage(primary.url, repository, 'a', { seed: 'doomed' });
    await pushManifest(primary.url, repository, 'b', doomed.bytes, doomed.mediaType);
    const kept = await pushImage(primary.url, repository, 'c', { seed: 'kept' });
    await eventually(async () => Object.keys(await readTags(secondary.url, repository)).length === 3);

    await deleteManifest(primary.url, repository, doomed.digest);

    await eventually(async () => JSON.stringify(await readTags(secondary.url, repository)) === JSON.stringify({ c: kept.digest }));
    expect(await manifestExists(secondary.url, repository, kept.digest)).toBe(true);
  });

  it('a forged event (right token, a tag or repository the primary lacks, a url elsewhere) copies nothing', async () => {
    // What the forged url points at really exists, elsewhere.
    await pushImage(elsewhere.url, 'listen/forged', 'v1');
    await pushImage(primary.url, 'listen/real', 'v1');
    await eventually(sameTags('listen/real'));
    const events = [
      forgedEvent('push', 'listen/forged', 'v1', `${elsewhere.url}/v2/listen/forged/manifests/v1`),
      forgedEvent('push', 'listen/real', 'ghost', `${elsewhere.url}/v2/listen/forged/manifests/v1`),
    ];

    const answer = await post(JSON.stringify({ events }), { authorization: `Bearer ${TOKEN}`, 'content-type': EVENTS_TYPE });

    expect(answer).toEqual({ status: 200, text: JSON.stringify({ accepted: 2, ignored: 0, invalid: 0 }) });
    await eventually(
      async () => listener!.lines.some((l) => l.message === 'replicated' && l.repository === 'listen/forged'),
      20_000,
      () => JSON.stringify(listener!.lines.filter((l) => l.message !== 'replicated').slice(-20)),
    );
    await idle(listener!);
    expect(await readTags(secondary.url, 'listen/forged')).toEqual({});
    expect(Object.keys(await readTags(secondary.url, 'listen/real'))).toEqual(['v1']);
  });

  it('a delete event for a tag the primary still has removes nothing', async () => {
    const repository = 'listen/still-there';
    await pushImage(primary.url, repository, 'v1');
    await eventually(sameTags(repository));
    // The push's own job (and a second look at an unsettled tag) logs after the secondary holds the
    // tag: only lines after the listener is idle can be the delete event's.
    await idle(listener!);
    const before = listener!.lines.length;

    const answer = await post(JSON.stringify({ events: [forgedEvent('delete', repository, 'v1', `${primary.url}/v2/${repository}/manifests/v1`)] }), {
      authorization: `Bearer ${TOKEN}`,
    });

    expect(answer.status).toBe(200);
    await eventually(async () => listener!.lines.slice(before).some((l) => l.message === 'replicated' && l.repository === repository));
    expect(listener!.lines.slice(before).find((l) => l.message === 'replicated' && l.repository === repository)).toMatchObject({
      status: 'synced',
      removed: [],
      unchanged: 1,
    });
    expect(await readTags(secondary.url, repository)).toEqual(await readTags(primary.url, repository));
  });

  it('answers a wrong or missing token 401, garbage 400, an oversized body 413, and survives all of it', async () => {
    const body = JSON.stringify({ events: [forgedEvent('push', 'listen/unauthorized', 'v1', 'x')] });
    await pushImage(primary.url, 'listen/unauthorized', 'v1', { seed: 'not-by-this-request' });
    const answers = [
      await post(body, { 'content-type': EVENTS_TYPE }),
      await post(body, { authorization: `Bearer ${TOKEN}x`, 'content-type': EVENTS_TYPE }),
      await post(body, { authorization: `Basic ${Buffer.from(`geo:${TOKEN}`).toString('base64')}` }),
      await post('{"events": [', { authorization: `Bearer ${TOKEN}`, 'content-type': EVENTS_TYPE }),
      await post('{"not": "events"}', { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }),
      await post(Buffer.alloc(1024 * 1024 + 1, 0x20), { authorization: `Bearer ${TOKEN}`, 'content-type': EVENTS_TYPE }),
    ];
    // A body over the limit without a declared length: read until the limit, then refused.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${listener!.url}/events`,
        { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
      for (let i = 0; i < 20; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
      req.end();
    });

    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 400, 400, 413]);
    expect(chunked).toBe(413);
    expect(answers[0]!.text).not.toContain(TOKEN);
    expect((await fetch(`${listener!.url}/healthz`)).status).toBe(200);
    // And it still replicates, from the registry's own events.
    await pushImage(primary.url, 'listen/after-abuse', 'v1');
    await eventually(sameTags('listen/after-abuse'));
  });

  it('coalesces a burst of 200 pushes to one repository into far fewer jobs, and loses none', async () => {
    const repository = 'listen/burst';
    const before = listener!.lines.length;
    const tags = Array.from({ length: 200 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    for (let i = 0; i < tags.length; i += 20) await Promise.all(tags.slice(i, i + 20).map((tag) => pushImage(primary.url, repository, tag)));

    await eventually(async () => Object.keys(await readTags(secondary.url, repository)).length === 200, 60_000);

    expect(await readTags(secondary.url, repository)).toEqual(await readTags(primary.url, repository));
    const jobs = listener!.lines.slice(before).filter((l) => l.message === 'replicated' && l.repository === repository);
    expect(jobs.reduce((sum, l) => sum + (l.tags as number), 0)).toBeGreaterThanOrEqual(200);
    expect(jobs.length).toBeLessThan(100);
    expect(jobs.length).toBeGreaterThan(0);
  });

  it('after convergence, sends no more requests to the primary (its own reads raise no work)', async () => {
    await idle(listener!);
    const settled = proxy.stats.requests;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(proxy.stats.requests).toBe(settled);
  });

  it("status shows each repository's last event and its lag", async () => {
    const result = await runGeoSync(['status', '--state-dir', stateDir]);
    expect(result.code).toBe(0);
    const row = result.stdout.split('\n').find((line) => line.startsWith('listen/push '));
    expect(result.stdout.split('\n')[0]).toMatch(/LAST EVENT/);
    expect(row).toMatch(/synced \(1 tag, lag \d+\.\d s\)/);
  });

  it('events lost while it was down (listener stopped, registry restarted) are caught by the reconcile at start, which converges', async () => {
    const stopped = await stopListener(listener!);
    listener = undefined;
    expect(stopped.code).toBe(0);
    const repository = 'listen/lost';
    await pushImage(primary.url, repository, 'v1');
    await pushImage(primary.url, repository, 'v2', { seed: 'v2' });
    // The registry kept those events in memory, to retry: a restart loses them.
    await primary.restart!();

    listener = await startListener(['--reconcile-every', '1h']);

    await eventually(sameTags(repository));
    await eventually(async () => listener!.lines.some((l) => l.message === 'reconcile finished'));
    // No event brought them: the registry lost those.
    expect(listener!.lines.filter((l) => l.message === 'replicated' && l.repository === repository)).toEqual([]);
  });

  it('a periodic reconcile catches changes no event announced', async () => {
    const stopped = await stopListener(listener!);
    expect(stopped.code).toBe(0);
    // A listener the registry does not send to: only its reconcile can see these pushes.
    const other = await startListener(['--reconcile-every', '1s'], {}, await freePort());
    try {
      await eventually(async () => other.lines.some((l) => l.message === 'reconcile finished'));
      const repository = 'listen/unannounced';
      await pushImage(primary.url, repository, 'v1');
      await eventually(sameTags(repository));
      expect(other.lines.filter((l) => l.message === 'reconcile started').length).toBeGreaterThan(1);
    } finally {
      expect((await stopListener(other)).code).toBe(0);
      listener = await startListener();
    }
  });

  it('SIGTERM: finishes the jobs in flight or hands them back, exits 0; the next start takes up what was handed back', async () => {
    const repository = 'listen/sigterm';
    const pushes = Array.from({ length: 30 }, (_, i) => pushImage(primary.url, repository, `s${i}`));
    await eventually(async () => listener!.lines.some((l) => l.message === 'replicated' && l.repository === repository));
    const stopped = await stopListener(listener!);
    listener = undefined;
    await Promise.all(pushes);

    expect(stopped.code).toBe(0);
    const lines = stopped.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { message: string; handedBack?: number });
    expect(lines.find((l) => l.message === 'stopped')).toEqual(expect.objectContaining({ handedBack: expect.any(Number) }));
    expect(existsSync(join(stateDir, 'pending-events.json'))).toBe((lines.find((l) => l.message === 'stopped')!.handedBack ?? 0) > 0);

    // No reconcile: what converges it is the work handed back and the registry's own retries.
    listener = await startListener();
    await eventually(sameTags(repository), 30_000);
    expect(existsSync(join(stateDir, 'pending-events.json'))).toBe(false);
    const handedBack = lines.find((l) => l.message === 'stopped')!.handedBack!;
    if (handedBack > 0)
      expect(listener.lines).toContainEqual(expect.objectContaining({ message: 'event jobs handed back by the last run restored', jobs: handedBack }));
  });
});
