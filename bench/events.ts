// The event path's figures for `npm run bench`: push -> replicated latency through a real primary's
// notifications and the real `geo-sync listen` process, and the requests one pushed tag costs at
// repository sizes of 10, 1,000 and 10,000 tags.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mapLimit } from '../shared/engine/base/concurrency.js';
import { RegistryClient, syncTags } from '../shared/engine/index.js';
import { startFaultProxy } from '../test/support/fault-proxy.js';
import { freePort, startRegistry, type RegistryOptions, type TestRegistry } from '../test/support/registry.js';
import { pushImage, pushManifest } from '../test/support/seed.js';
import { processCpuMs, registryPid } from './measure.js';

export interface EventRow {
  size: number | 'all';
  measure: string;
  unit: string;
  ours: number;
  peerName: string;
  target: string;
  meets?: boolean;
}

const PUSHES = 200;
/** How often the secondary's tag list is read to see a tag arrive (the latency's resolution). */
const OBSERVE_MS = 25;

export async function benchEvents(options: {
  cli: string;
  registryEnv: Record<string, string>;
  sizes: number[];
  log: (line: string) => void;
}): Promise<{ rows: EventRow[]; details: Record<string, unknown> }> {
  const { log } = options;
  const rows: EventRow[] = [];
  const details: Record<string, unknown> = {};

  log('== event path: push -> replicated through geo-sync listen ==');
  for (const mode of ['sequential', 'concurrent'] as const) {
    const latency = await pushLatency(mode, options);
    details[`latency-${mode}`] = latency;
    const cpu = Object.entries(latency.cpuSeconds)
      .map(([name, seconds]) => `${name} ${seconds?.toFixed(1) ?? '?'} s`)
      .join(', ');
    const largest = Math.max(...latency.jobLines.map((j) => j.tags));
    log(
      `${PUSHES} ${mode} pushes: p50 ${latency.p50.toFixed(3)} s, p99 ${latency.p99.toFixed(3)} s, max ${latency.max.toFixed(3)} s; ${latency.jobs} event jobs (largest ${largest} tags); pushing took ${latency.pushSeconds.toFixed(1)} s, all replicated after ${latency.replicatedSeconds.toFixed(1)} s; cpu: ${cpu}`,
    );
    rows.push({ size: 'all', measure: `push -> replicated p50, ${PUSHES} ${mode} pushes`, unit: 's', ours: latency.p50, peerName: '-', target: '-' });
    rows.push({
      size: 'all',
      measure: `push -> replicated p99, ${PUSHES} ${mode} pushes`,
      unit: 's',
      ours: latency.p99,
      peerName: '-',
      target: '< 2 s',
      meets: latency.p99 < 2,
    });
  }

  log('== event path: requests per pushed tag ==');
  for (const size of options.sizes) {
    const counted = await requestsPerEvent(size, options.registryEnv);
    details[`requests-${size}`] = counted;
    log(
      `${size} tags: a pushed tag cost ${counted.notBlobs} requests (${counted.total} counting its blobs: ${JSON.stringify(counted.byKind)}); a moved tag ${counted.moved.notBlobs} (${counted.moved.total})`,
    );
    rows.push({
      size,
      measure: 'requests per pushed tag (not counting its blobs)',
      unit: 'req',
      ours: counted.notBlobs,
      peerName: '-',
      target: '<= 10',
      meets: counted.notBlobs <= 10,
    });
  }
  return { rows, details };
}

/** `PUSHES` pushes to one repository, one after another or all at once; each timed from its manifest PUT to its tag on the secondary. */
async function pushLatency(mode: 'sequential' | 'concurrent', options: { cli: string; registryEnv: Record<string, string> }) {
  const token = randomBytes(24).toString('hex');
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), 'bench-listen-'));
  const registries: TestRegistry[] = [];
  let listener: ChildProcess | undefined;
  try {
    // The registry configured as the README recommends: no pull events, no blob events.
    const notifications: RegistryOptions['notifications'] = {
      url: `http://127.0.0.1:${port}/events`,
      headers: { Authorization: [`Bearer ${token}`] },
      ignoredActions: ['pull'],
      ignoredMediaTypes: ['application/octet-stream'],
    };
    registries.push(await startRegistry({ env: options.registryEnv, notifications }), await startRegistry({ env: options.registryEnv }));
    const [primary, secondary] = registries as [TestRegistry, TestRegistry];
    listener = spawn(process.execPath, [options.cli, 'listen', '--port', String(port), '--reconcile-every', '0', '--log-level', 'info'], {
      env: {
        PATH: process.env.PATH ?? '',
        GEO_SYNC_PRIMARY_URL: primary.url,
        GEO_SYNC_SECONDARY_URL: secondary.url,
        GEO_SYNC_WEBHOOK_TOKEN: token,
        GEO_SYNC_STATE_DIR: state,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const jobLines: { tags: number; durationMs: number; lagSeconds?: number }[] = [];
    let partial = '';
    listener.stderr!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (!line.includes('"message":"replicated"')) continue;
        const { tags, durationMs, lagSeconds } = JSON.parse(line) as { tags: number; durationMs: number; lagSeconds?: number };
        jobLines.push({ tags, durationMs, ...(lagSeconds !== undefined ? { lagSeconds } : {}) });
      }
    });
    for (const until = Date.now() + 15_000; ;) {
      if (
        (await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.status,
          () => 0,
        )) === 200
      )
        break;
      if (Date.now() > until) throw new Error('geo-sync listen did not come up');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const repository = `bench/events-${mode}`;
    const tags = Array.from({ length: PUSHES }, (_, i) => `e${String(i).padStart(4, '0')}`);
    const pushedAt = new Map<string, number>();
    const seenAt = new Map<string, number>();
    let observing = true;
    const observer = (async () => {
      while (observing && seenAt.size < tags.length) {
        const response = await fetch(`${secondary.url}/v2/${repository}/tags/list`).catch(() => undefined);
        const now = performance.now();
        const listed = response?.ok ? (((await response.json()) as { tags?: string[] | null }).tags ?? []) : (await response?.arrayBuffer(), []);
        for (const tag of listed) if (!seenAt.has(tag)) seenAt.set(tag, now);
        await new Promise((resolve) => setTimeout(resolve, OBSERVE_MS));
      }
    })();
    const push = async (tag: string) => {
      await pushImage(primary.url, repository, tag, { seed: mode });
      pushedAt.set(tag, performance.now());
    };
    const pids = [listener.pid, ...registries.map((r) => registryPid(r.root))];
    const cpuBefore = pids.map(processCpuMs);
    const started = performance.now();
    await mapLimit(tags, mode === 'sequential' ? 1 : tags.length, push);
    const pushSeconds = (performance.now() - started) / 1000;
    for (const until = Date.now() + 120_000; seenAt.size < tags.length && Date.now() < until;) await new Promise((resolve) => setTimeout(resolve, 50));
    observing = false;
    await observer;
    const replicatedSeconds = (performance.now() - started) / 1000;
    const [listenerCpu, primaryCpu, secondaryCpu] = pids
      .map(processCpuMs)
      .map((after, i) => (after === undefined || cpuBefore[i] === undefined ? undefined : (after - cpuBefore[i]!) / 1000));
    if (seenAt.size < tags.length) throw new Error(`${tags.length - seenAt.size} of ${tags.length} pushed tags never reached the secondary`);
    // A tag listed before its push returned (the listener was faster than our client) counts as 0.
    const latencies = tags.map((tag) => Math.max(0, seenAt.get(tag)! - pushedAt.get(tag)!) / 1000).sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]!;
    return {
      p50: at(0.5),
      p99: at(0.99),
      max: latencies.at(-1)!,
      jobs: jobLines.length,
      jobLines,
      pushSeconds,
      replicatedSeconds,
      cpuSeconds: { listener: listenerCpu, primary: primaryCpu, secondary: secondaryCpu },
      resolutionSeconds: OBSERVE_MS / 1000,
    };
  } finally {
    if (listener && listener.exitCode === null) {
      const exited = new Promise((resolve) => listener!.once('exit', resolve));
      listener.kill('SIGTERM');
      await exited;
    }
    await Promise.all(registries.map((r) => r.stop()));
    rmSync(state, { recursive: true, force: true });
  }
}

/**
 * One repository of `size` tags, the same on both sides (one image under every tag); then one
 * new tag pushed and one moved on the primary, each synced by name through counting proxies.
 */
async function requestsPerEvent(size: number, registryEnv: Record<string, string>) {
  const [primary, secondary] = await Promise.all([startRegistry({ env: registryEnv }), startRegistry({ env: registryEnv })]);
  const proxies = await Promise.all([startFaultProxy(primary.url), startFaultProxy(secondary.url)]);
  try {
    const repository = `bench/size-${size}`;
    for (const url of [primary.url, secondary.url]) {
      const image = await pushImage(url, repository, 't0', { seed: 'base' });
      await mapLimit(
        Array.from({ length: size - 1 }, (_, i) => `t${i + 1}`),
        16,
        (tag) => pushManifest(url, repository, tag, image.bytes, image.mediaType),
      );
    }
    await pushImage(primary.url, repository, 'pushed', { seed: 'pushed' });
    await pushImage(primary.url, repository, 't0', { seed: 'moved' });
    const count = async (tag: string) => {
      const before = proxies.map((p) => p.log.length);
      const p = new RegistryClient({ url: proxies[0].url });
      const s = new RegistryClient({ url: proxies[1].url });
      try {
        const report = await syncTags(p, s, repository, [tag]);
        if (report.status !== 'synced') throw new Error(`syncTags ${tag} in ${size} tags: ${report.status}`);
      } finally {
        await Promise.all([p.close(), s.close()]);
      }
      const sent = proxies.flatMap((proxy, i) => proxy.log.slice(before[i]));
      const byKind: Record<string, number> = {};
      for (const r of sent) {
        const kind = `${r.method} ${r.path.includes('/blobs/') ? 'blob' : r.path.includes('/manifests/') ? 'manifest' : 'other'}`;
        byKind[kind] = (byKind[kind] ?? 0) + 1;
      }
      return { total: sent.length, notBlobs: sent.filter((r) => !r.path.includes('/blobs/')).length, byKind };
    };
    const pushed = await count('pushed');
    const moved = await count('t0');
    return { ...pushed, moved };
  } finally {
    await Promise.all(proxies.map((p) => p.stop()));
    await Promise.all([primary.stop(), secondary.stop()]);
  }
}
