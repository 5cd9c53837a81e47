// Soak support: settings from the environment, a counting random-fault rule for the fault proxy,
// the true state of both registries read back over HTTP, and the results table.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { THROWAWAY_ANNOTATION } from '../../shared/engine/sync/tag-removal.js';
import type { CliResult } from './cli.js';
import type { Fault, ProxiedRequest } from './fault-proxy.js';
import { getManifest, readTags } from './seed.js';

// ---------------------------------------------------------------------------------------------
// Settings

export interface SoakSettings {
  /** Repositories of the random-fault scenario (also one race round each). */
  repositories: number;
  /** Tags per repository on the primary, including one multi-arch index and one moved tag. */
  tags: number;
  /** Share of requests (each side) that get a fault. */
  faultRate: number;
  /** SIGKILLs of the CLI in the crash scenario. */
  kills: number;
  seed: number;
  /** Engine retries per request under random faults after a repository's first run (which retries nothing). */
  retries: number;
  /** Write the counts as JSON here. */
  report: string | undefined;
}

/** Reads SOAK_* variables; a bad value throws an error naming the variable, the value and the range. */
export function soakSettings(env: NodeJS.ProcessEnv = process.env): SoakSettings {
  return {
    repositories: integer(env, 'SOAK_REPOSITORIES', 8, 1, 1000),
    tags: integer(env, 'SOAK_TAGS', 6, 4, 500),
    faultRate: fraction(env, 'SOAK_FAULT_RATE', 0.05, 0.01, 0.5),
    kills: integer(env, 'SOAK_KILLS', 6, 1, 1000),
    seed: integer(env, 'SOAK_SEED', 20240601, 0, 2 ** 32 - 1),
    retries: integer(env, 'SOAK_RETRIES', 1, 0, 10),
    report: env.SOAK_REPORT?.trim() || undefined,
  };
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

function fraction(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(raw) || value < min || value > max) {
    throw new Error(`${name} must be a number from ${min} to ${max} (e.g. 0.05 for 5%), not ${JSON.stringify(raw)}`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Random faults

export type FaultKind = '503' | '502' | '429' | 'reset' | 'truncate' | 'delay';
export const RETRY_AFTER_SECONDS = 1;

/**
 * A fault-proxy rule that breaks `rate` of the requests, each with one of six faults, and counts
 * what it decided. It also checks that a request answered 429 is not sent again before its
 * Retry-After: 429s go only to reads, whose (method, path) in a repository is unique per operation
 * in flight; `forget` a repository when its run ends.
 */
export class RandomFaults {
  readonly decided: Record<FaultKind, number> = { '503': 0, '502': 0, '429': 0, reset: 0, truncate: 0, delay: 0 };
  readonly retryAfter = { honoured: 0, early: 0 };
  readonly earlyDetails: string[] = [];
  private readonly throttled = new Map<string, number>();
  /** Repositories whose run retries nothing: a second request of theirs is another operation's, never a retry. */
  private readonly notRetrying = new Set<string>();

  constructor(
    private readonly random: () => number,
    private readonly rate: number,
  ) {}

  readonly rule = ({ method, path }: ProxiedRequest): Fault | undefined => {
    const key = `${method} ${path}`;
    const since = this.throttled.get(key);
    if (since !== undefined) {
      this.throttled.delete(key);
      // 50 ms of slack for timer granularity on a loaded machine.
      if (Date.now() - since >= RETRY_AFTER_SECONDS * 1000 - 50) this.retryAfter.honoured++;
      else {
        this.retryAfter.early++;
        this.earlyDetails.push(`${key} again after ${Date.now() - since} ms`);
      }
    }
    if (this.random() >= this.rate) return undefined;
    const read = method === 'GET' || method === 'HEAD';
    const kinds: FaultKind[] = ['503', '502', 'reset', 'delay', ...(read ? (['429'] as const) : []), ...(method === 'GET' ? (['truncate'] as const) : [])];
    const kind = kinds[Math.floor(this.random() * kinds.length)]!;
    this.decided[kind]++;
    switch (kind) {
      case '503':
      case '502':
        return { kind: 'status', status: Number(kind) };
      case '429':
        // Tracked for repository operations only: a probe such as GET /gitlab/v1/ is sent once by
        // every new client, so its next copy is another client's, not a retry.
        if (/^\/v2\/.+\/(manifests|blobs|tags)\//.test(path) && ![...this.notRetrying].some((r) => path.startsWith(`/v2/${r}/`)))
          this.throttled.set(key, Date.now());
        return { kind: 'status', status: 429, headers: { 'retry-after': String(RETRY_AFTER_SECONDS) } };
      case 'reset':
        return { kind: 'reset' };
      case 'truncate':
        return { kind: 'truncate' };
      case 'delay':
        return { kind: 'delay', ms: 20 + Math.floor(this.random() * 180) };
    }
  };

  /** Forgets pending 429s of a repository: a run that gave up after one never sends it again. */
  forget(repository: string): void {
    for (const key of this.throttled.keys()) if (key.includes(`/v2/${repository}/`)) this.throttled.delete(key);
  }

  /**
   * Whether the repository's next run retries: only then is a repeat after a 429 a retry that must
   * wait out Retry-After. A run with no retries may read a tag again in a later step (the check of
   * the primary after its writes), which is no retry.
   */
  retrying(repository: string, retries: boolean): void {
    if (retries) this.notRetrying.delete(repository);
    else this.notRetrying.add(repository);
  }
}

// ---------------------------------------------------------------------------------------------
// The truth, read directly from the registries

export type TagState = Record<string, string>;

export interface Differences {
  missing: string[];
  extra: string[];
  mismatched: string[];
}

/** (tag -> digest) as the registry itself reports it over HTTP. */
export function readState(url: string, repository: string): Promise<TagState> {
  return readTags(url, repository);
}

export function differences(primary: TagState, secondary: TagState): Differences {
  return {
    missing: Object.keys(primary).filter((tag) => !(tag in secondary)),
    extra: Object.keys(secondary).filter((tag) => !(tag in primary)),
    mismatched: Object.keys(primary).filter((tag) => tag in secondary && secondary[tag] !== primary[tag]),
  };
}

export function differenceCount(d: Differences): number {
  return d.missing.length + d.extra.length + d.mismatched.length;
}

export function differingTags(d: Differences): string[] {
  return [...d.missing, ...d.extra, ...d.mismatched];
}

/** Tags of the secondary that point at a throwaway manifest (only tags the primary lacks, or holds at another digest, can). */
export async function throwawayTags(url: string, repository: string, primary: TagState, secondary: TagState): Promise<string[]> {
  const found: string[] = [];
  for (const [tag, digest] of Object.entries(secondary)) {
    if (primary[tag] === digest) continue;
    if (await isThrowaway(url, repository, digest)) found.push(tag);
  }
  return found;
}

export async function isThrowaway(url: string, repository: string, digest: string): Promise<boolean> {
  const manifest = await getManifest(url, repository, digest);
  if (!manifest) return false;
  try {
    const parsed = JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as { annotations?: Record<string, string> };
    return parsed.annotations?.[THROWAWAY_ANNOTATION] !== undefined;
  } catch {
    return false;
  }
}

/**
 * Throwaway manifests still stored in the repository (tagged or not), from the registry's
 * filesystem storage: a manifest deleted by digest loses its revision link, so a linked one was
 * never deleted. Informational; a registry garbage collection with --delete-untagged removes them.
 */
export function storedThrowaways(storageRoot: string, repository: string): number {
  const v2 = join(storageRoot, 'docker', 'registry', 'v2');
  const revisions = join(v2, 'repositories', repository, '_manifests', 'revisions', 'sha256');
  let count = 0;
  let entries: string[];
  try {
    entries = readdirSync(revisions);
  } catch {
    return 0;
  }
  for (const hex of entries) {
    // Registry 2.8 deletes a manifest by removing its revision link; the directory stays.
    if (!existsSync(join(revisions, hex, 'link'))) continue;
    try {
      const data = readFileSync(join(v2, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data'), 'utf8');
      if (data.includes(THROWAWAY_ANNOTATION)) count++;
    } catch {
      // A revision whose blob is gone is not ours to count.
    }
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// The CLI, as built when the soak started

const BUNDLE = fileURLToPath(new URL('../../dist/cli.mjs', import.meta.url));

/**
 * Copies the CLI bundle (built by test/global-setup.ts) into `dir` and returns its path. A soak
 * runs for minutes; another test run or `npm run bench` rebuilding dist/ meanwhile must not change
 * (or catch half-written) the binary under test. The chunks beside it (dist/chunks/, what the
 * bundle imports, on start or on first use of ECR) go with it.
 */
export function snapshotCli(dir: string): string {
  const copy = join(dir, 'cli.mjs');
  copyFileSync(BUNDLE, copy);
  if (existsSync(`${BUNDLE}.map`)) copyFileSync(`${BUNDLE}.map`, `${copy}.map`);
  cpSync(join(dirname(BUNDLE), 'chunks'), join(dir, 'chunks'), { recursive: true });
  return copy;
}

/** Runs that copy of `geo-sync` as a user would (like support/cli.ts): a clean environment plus `env`. */
export function spawnCli(bundle: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [bundle, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const done = new Promise<CliResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  return { child, done };
}

// ---------------------------------------------------------------------------------------------
// Results

/** One scenario's counts; absent measures print as "–". */
export type Counts = Partial<Record<Measure, number | string>>;

export const MEASURES = {
  size: 'repositories × primary tags',
  requests: 'requests sent (counted by the proxies, both sides)',
  fault503: 'failed by injection: 503',
  fault502: 'failed by injection: 502',
  fault429: `failed by injection: 429, Retry-After: ${RETRY_AFTER_SECONDS}`,
  faultReset: 'failed by injection: connection reset',
  faultTruncate: 'failed by injection: body cut short',
  faultDelay: 'slowed by injection: 20–200 ms delay (not a failure)',
  retryAfterEarly: 'retried before Retry-After (must be 0)',
  kills: 'SIGKILLs that landed mid-run',
  killModes: 'kill points',
  changes: 'primary changed during a run',
  retries: 'retries made by the engine',
  runs: 'sync runs',
  runsSynced: 'runs reporting "synced"',
  runsGaveUp: 'runs that gave up, naming the failed tags (exit 3)',
  failedTags: 'tags named as failed',
  runsDifferences: 'runs reporting differences (exit 1)',
  runsAborted: 'runs stopped by an error before a report (exit 3)',
  unnamed: 'differences a non-synced run left unnamed (must be 0)',
  syncedMismatch: '"synced" with a mismatch (must be 0)',
  syncedAfterLastRead: '"synced", primary changed after the run\'s last read of it',
  converged: 'repositories converged',
  tagsLost: 'tags lost (must be 0)',
  wrongDigests: 'wrong digests on the secondary (must be 0)',
  throwawaysTagged: 'throwaway manifests left tagged (must be 0)',
  extraTags: 'extra tags left (must be 0)',
  throwawaysAfterKill: 'throwaway tags seen right after a kill',
  staleLocks: 'stale lock files left by kills (taken over)',
  storedThrowaways: 'throwaway manifests left untagged in storage',
  exitCodes: 'exit codes seen',
  seconds: 'wall time (s)',
} as const;
export type Measure = keyof typeof MEASURES;

export interface SoakResult {
  settings: Omit<SoakSettings, 'report'>;
  scenarios: Record<string, Counts>;
  /** Invariant breaches, each described; empty when the soak held. */
  violations: string[];
  seconds: number;
}

/** Measures as rows, scenarios as columns; rows no scenario measured are left out. */
export function soakTable(result: SoakResult): string {
  const names = Object.keys(result.scenarios);
  const lines = [`| measure | ${names.join(' | ')} |`, `| --- | ${names.map(() => '---:').join(' | ')} |`];
  for (const [key, label] of Object.entries(MEASURES) as [Measure, string][]) {
    const cells = names.map((name) => result.scenarios[name]![key]);
    if (cells.every((cell) => cell === undefined)) continue;
    lines.push(`| ${label} | ${cells.map((cell) => (cell === undefined ? '–' : String(cell))).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** `{0: 5, 3: 2}` -> "0 ×5, 3 ×2". */
export function tally(codes: Record<string, number>): string {
  const entries = Object.entries(codes).sort(([a], [b]) => (a < b ? -1 : 1));
  return entries.length ? entries.map(([code, n]) => `${code} ×${n}`).join(', ') : '–';
}

export function bump(counter: Record<string, number>, key: string | number, by = 1): void {
  counter[key] = (counter[key] ?? 0) + by;
}

/** Runs `work` over `items`, `limit` at a time. */
export async function inPool<T>(items: T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
