// The bench's harness, shared by every measure: its configuration (BENCH_* variables), the
// registries it starts and stops, the three tools run as timed processes (ours, skopeo, the
// sequential verifier), request counting, CPU profiles, the checks that a sync left the right tags,
// and logging.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFaultProxy, type FaultProxy } from '../test/support/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../test/support/registry.js';
import { readTags } from '../test/support/seed.js';
import { processCpuMs, registryPid, runTimed, type Timed } from './measure.js';
import { summariseProfile, type ProfileSummary } from './profile.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The bench bundle itself (dist/bench.mjs), run again as the sequential verifier (see main.ts). */
const SELF = fileURLToPath(import.meta.url);
/** The geo-sync bundle measured; BENCH_CLI points at another build to compare an engine change (A/B). */
export const CLI = process.env.BENCH_CLI ?? join(ROOT, 'dist', 'cli.mjs');
const RSS_PROBE = join(ROOT, 'test', 'support', 'report-rss.mjs');
export const RESULTS = join(ROOT, 'bench', 'results.json');
export const FAN_OUT_BUNDLE = join(ROOT, 'dist', 'bench-fan-out.mjs');
export const SERVERLESS_YML = join(ROOT, 'serverless.yml');

export const REPOSITORY = 'bench/app';
export const BIG_REPOSITORY = 'bench/big';
/** `skopeo sync` (without --scoped) puts SOURCE's last path element under DESTINATION: <dest>/bench + app = bench/app. */
const SKOPEO_DESTINATION_NAMESPACE = 'bench';

export const config = {
  sizes: intList(process.env.BENCH_SIZES ?? '200,2000'),
  reps: int(process.env.BENCH_REPS, 3),
  /** Initial syncs need fresh secondaries and are the slowest phase; fewer repetitions above this size. */
  initialRepsLarge: int(process.env.BENCH_INITIAL_REPS_LARGE, 1),
  largeAbove: 1000,
  baseLayerKb: int(process.env.BENCH_BASE_LAYER_KB, 1024),
  bigLayerMb: int(process.env.BENCH_LAYER_MB, 1024),
  fanOutRepositories: int(process.env.BENCH_FAN_OUT_REPOSITORIES, 5000),
  cpuProfile: process.env.BENCH_CPU_PROF,
  /**
   * The registries run with the blob descriptor cache of Debian's shipped config
   * (/etc/docker/registry/config.yml); the test harness turns it off for tests that inspect state
   * right after deletes. BENCH_REGISTRY_CACHE=none runs them as the tests do.
   */
  registryCache: process.env.BENCH_REGISTRY_CACHE ?? 'inmemory',
  /** skopeo's request count per tag does not depend on the size; counted at the first size only. */
  countSkopeoRequests: 'first size',
};

export interface Sample {
  wallMs: number;
  cpuMs?: number;
  maxRssKb?: number;
  /** CPU the registries (both sides) spent during the run. */
  registryCpuMs?: number;
}

const tmp = mkdtempSync(join(tmpdir(), 'geo-sync-bench-'));
const live = new Set<{ stop(): Promise<void> }>();
let statsFiles = 0;

export async function registry(): Promise<TestRegistry> {
  const cache: Record<string, string> = config.registryCache === 'none' ? {} : { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: config.registryCache };
  const started = await startRegistry({ env: cache });
  const tracked = { stop: () => started.stop() };
  live.add(tracked);
  return {
    ...started,
    stop: async () => {
      live.delete(tracked);
      await started.stop();
    },
  };
}

export async function cleanUp(): Promise<void> {
  await Promise.allSettled([...live].map((resource) => resource.stop()));
  live.clear();
  rmSync(tmp, { recursive: true, force: true });
}

/** `env`: the run's own variables (GEO_SYNC_*, AWS_*), on top of the clean environment. */
export function runOurs(args: string[], options: { rss?: boolean; nodeOptions?: string[]; env?: Record<string, string> } = {}): Promise<Timed> {
  const nodeArgs = [...(options.rss ? ['--import', RSS_PROBE] : []), ...(options.nodeOptions ?? [])];
  // A clean environment, as a user's shell would give: no GEO_SYNC_* leaking in.
  const env = { PATH: process.env.PATH ?? '', TMPDIR: tmp, ...options.env };
  return runTimed(process.execPath, [...nodeArgs, CLI, ...args], { env, statsFile: nextStatsFile() });
}

export function runSkopeoSync(primaryHost: string, secondaryHost: string, repository: string): Promise<Timed> {
  const home = join(tmp, 'skopeo-home');
  mkdirSync(home, { recursive: true });
  const args = ['sync', '--all', '--preserve-digests', '--src', 'docker', '--dest', 'docker', '--src-tls-verify=false', '--dest-tls-verify=false'];
  return runTimed('skopeo', [...args, `${primaryHost}/${repository}`, `${secondaryHost}/${SKOPEO_DESTINATION_NAMESPACE}`], {
    env: { PATH: process.env.PATH ?? '', HOME: home, TMPDIR: tmp },
    statsFile: nextStatsFile(),
  });
}

/** Runs `work`, checks it exited 0, and adds the registries' CPU during it. */
export async function measured(registries: TestRegistry[], work: () => Promise<Timed>, what: string): Promise<Sample> {
  const pids = registries.map((r) => registryPid(r.root));
  const before = pids.map(processCpuMs);
  const result = expectOk(await work(), what);
  const after = pids.map(processCpuMs);
  const deltas = after.map((a, i) => (a === undefined || before[i] === undefined ? undefined : a - before[i]!));
  const s = sample(result);
  if (deltas.every((d) => d !== undefined)) s.registryCpuMs = deltas.reduce((sum, d) => sum! + d!, 0);
  return s;
}

export function sample(result: Timed): Sample {
  return {
    wallMs: result.wallMs,
    ...(result.cpuMs !== undefined ? { cpuMs: result.cpuMs } : {}),
    ...(result.maxRssKb !== undefined ? { maxRssKb: result.maxRssKb } : {}),
  };
}

export function expectOk(result: Timed, what: string): Timed {
  if (result.code !== 0) {
    throw new Error(`${what} exited ${result.code}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-4000)}`);
  }
  return result;
}

/** Counts every request `work` sends through counting proxies (no faults) in front of both registries. */
export async function countRequests(primaryUrl: string, secondaryUrl: string, work: (primary: FaultProxy, secondary: FaultProxy) => Promise<unknown>) {
  const [p, s] = await Promise.all([startFaultProxy(primaryUrl), startFaultProxy(secondaryUrl)]);
  try {
    await work(p, s);
    const byMethod: Record<string, number> = {};
    for (const entry of [...p.log, ...s.log]) byMethod[entry.method] = (byMethod[entry.method] ?? 0) + 1;
    return { total: p.stats.requests + s.stats.requests, primary: p.stats.requests, secondary: s.stats.requests, byMethod };
  } finally {
    await Promise.all([p.stop(), s.stop()]);
  }
}

/** One extra run of ours under --cpu-prof (never a timed run), summarised. */
export async function profiled(args: string[]): Promise<ProfileSummary> {
  const dir = join(typeof config.cpuProfile === 'string' && config.cpuProfile !== '1' ? config.cpuProfile : join(tmp, 'profiles'), String(Date.now()));
  mkdirSync(dir, { recursive: true });
  expectOk(await runOurs(args, { nodeOptions: ['--cpu-prof', '--cpu-prof-dir', dir] }), `profiled geo-sync ${args[0]}`);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written to ${dir}`);
  return summariseProfile(join(dir, file));
}

export async function expectSame(url: string, expected: Record<string, string>, what: string, repository = REPOSITORY): Promise<void> {
  const actual = await readTags(url, repository);
  const wrong = Object.keys({ ...expected, ...actual }).filter((tag) => expected[tag] !== actual[tag]);
  if (wrong.length > 0)
    throw new Error(`${what}: ${wrong.length} tags differ from the primary (e.g. ${wrong.slice(0, 5).join(', ')}); ${Object.keys(actual).length} tags there`);
}

/** Every primary tag at the primary's digest; returns how many extra tags the secondary also holds. */
export async function expectSuperset(url: string, expected: Record<string, string>, what: string): Promise<number> {
  const actual = await readTags(url, REPOSITORY);
  const wrong = Object.keys(expected).filter((tag) => expected[tag] !== actual[tag]);
  if (wrong.length > 0) throw new Error(`${what}: ${wrong.length} primary tags missing or different (e.g. ${wrong.slice(0, 5).join(', ')})`);
  return Object.keys(actual).filter((tag) => !(tag in expected)).length;
}

function nextStatsFile(): string {
  return join(tmp, `time-${++statsFiles}.txt`);
}

export function describeEnvironment() {
  const version = (command: string, args: string[]) => {
    try {
      return execFileSync(command, args, { encoding: 'utf8' }).trim().split('\n')[0] ?? 'unknown';
    } catch {
      return `${command}: unavailable`;
    }
  };
  return {
    node: `node ${process.version}`,
    skopeo: version('skopeo', ['--version']),
    registry: version(process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry', ['--version']),
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  };
}

/** The sequential verifier as its own process (`node dist/bench.mjs sequential-verify ...`), so it pays a process start as the CLI does. */
export function runSequentialVerify(primaryUrl: string, secondaryUrl: string, repository: string): Promise<Timed> {
  return runTimed(process.execPath, [SELF, 'sequential-verify', primaryUrl, secondaryUrl, repository], { statsFile: nextStatsFile() });
}

export function describe(s: Sample): string {
  const cpu = s.cpuMs === undefined ? '' : `, cpu ${seconds(s.cpuMs)}`;
  const reg = s.registryCpuMs === undefined ? '' : `, registries cpu ${seconds(s.registryCpuMs)}`;
  return `${seconds(s.wallMs)}${cpu}${reg}`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function int(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a whole number, got ${JSON.stringify(raw)}`);
  return n;
}

export function intList(raw: string): number[] {
  const sizes = raw.split(',').map((s) => int(s.trim(), Number.NaN));
  if (sizes.length === 0 || sizes.some((n) => !(n > 0)))
    throw new Error(`BENCH_SIZES must be positive whole numbers separated by commas, got ${JSON.stringify(raw)}`);
  return sizes;
}
