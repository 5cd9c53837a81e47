// What one CLI run cost an ECR side, read from the stand-in's own records (test/support/ecr-stand-in.ts):
// the registry requests it received by kind, and the ECR API calls by operation. Shared by the ECR
// rows of bench/ecr.ts (one ECR side against another registry) and bench/ecr-to-ecr.ts (both sides
// one stand-in, told apart by repository).
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import type { EcrStandIn } from '../test/support/ecr-stand-in.js';
import type { RegistryRequest } from '../test/support/ecr-registry-front.js';
import { expectOk, log, runOurs } from './harness.js';

/** The goal of issue 29: registry requests to an ECR side per tag, against 1.0 HEAD a tag before. */
export const GOAL_PER_TAG = 0.01;

export type Command = 'no-op sync' | 'verify';
/** Read through ECR's API (the side declared ECR), or as a plain registry with the token as its password. */
export type Reading = 'ecr' | 'plain';
/** Referrers on (the default), and off (--no-referrers). */
export type Referrers = 'on' | 'off';

export const READING_LABEL: Record<Reading, string> = { ecr: 'read through the ECR API', plain: 'read as a plain registry (token as password)' };

export type ApiCall = EcrStandIn['apiCalls'][number];

/** What one CLI run cost one ECR side. */
export interface SideCost {
  registryRequests: number;
  /** Registry requests by kind (HEAD manifest, GET manifest, referrers, tag list, ping, GitLab probe, other). */
  byKind: Record<string, number>;
  /** ECR API calls by operation. */
  apiCalls: Record<string, number>;
  /** The requests counted as `other`, as sent (method, path, status answered). */
  other: string[];
  wallMs: number;
}

/** Everything the stand-in received during one CLI run, and how long the run took. */
export interface RunRecord {
  requests: RegistryRequest[];
  calls: ApiCall[];
  wallMs: number;
}

/** The command's arguments: a sync or a verify of `repository`, referrers on or off. */
export function commandArgs(command: Command, repository: string, referrers: Referrers): string[] {
  return [command === 'verify' ? 'verify' : 'sync', repository, '--json', ...(referrers === 'off' ? ['--no-referrers'] : [])];
}

/** One CLI run (exit 0 or the bench stops); what reached the stand-in during it. A write there is a warning: these runs change nothing. */
export async function recordRun(ecr: EcrStandIn, args: string[], env: Record<string, string>, what: string): Promise<RunRecord> {
  const requestsBefore = ecr.registryRequests.length;
  const callsBefore = ecr.apiCalls.length;
  const run = expectOk(await runOurs(args, { env }), what);
  const requests = ecr.registryRequests.slice(requestsBefore);
  const writes = requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
  if (writes.length > 0) log(`WARNING: ${what} wrote ${writes.length} times to the ECR side`);
  return { requests, calls: ecr.apiCalls.slice(callsBefore), wallMs: run.wallMs };
}

/** A run's cost, counting only the requests and calls `keep` takes (all by default). */
export function costOf(record: RunRecord, keep: { request?: (r: RegistryRequest) => boolean; call?: (c: ApiCall) => boolean } = {}): SideCost {
  const requests = record.requests.filter(keep.request ?? (() => true));
  const apiCalls: Record<string, number> = {};
  for (const call of record.calls.filter(keep.call ?? (() => true))) apiCalls[call.operation] = (apiCalls[call.operation] ?? 0) + 1;
  const byKind: Record<string, number> = {};
  for (const request of requests) byKind[kindOf(request)] = (byKind[kindOf(request)] ?? 0) + 1;
  const other = requests.filter((r) => kindOf(r) === 'other').map((r) => `${r.method} ${r.path} ${r.status}`);
  return { registryRequests: requests.length, byKind, apiCalls, other, wallMs: record.wallMs };
}

function kindOf({ method, path }: RegistryRequest): string {
  const route = path.split('?')[0]!;
  if (!['GET', 'HEAD'].includes(method)) return 'write';
  if (/\/referrers\/[^/]+$/.test(route)) return 'referrers';
  if (/\/manifests\/[^/]+$/.test(route)) return `${method} manifest`;
  if (route.endsWith('/tags/list')) return 'tag list';
  if (route === '/v2/' || route === '/v2') return 'ping';
  // The probe for GitLab's tag list API a plain registry is asked once per run (ECR answers 401, then 404).
  if (route.startsWith('/gitlab/')) return 'GitLab probe';
  return 'other';
}

const REPOSITORY_PATH = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\//;

/** The repository a registry request names, or undefined (the ping, the GitLab probe). */
export function requestRepository({ path }: RegistryRequest): string | undefined {
  return REPOSITORY_PATH.exec(path.split('?')[0]!)?.[1];
}

/** The repositories an ECR API call names (none for GetAuthorizationToken, or DescribeRepositories of them all). */
export function callRepositories({ input }: ApiCall): string[] {
  if (typeof input.repositoryName === 'string') return [input.repositoryName];
  return Array.isArray(input.repositoryNames) ? input.repositoryNames.filter((name): name is string => typeof name === 'string') : [];
}

export const listed = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, n]) => `${name} ${n}`)
    .join(', ') || 'none';

export const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);

export function describeCost(cost: SideCost): string {
  return `${cost.registryRequests} registry requests (${listed(cost.byKind)}); ECR API: ${listed(cost.apiCalls)}`;
}

/** The SDK's own variables: the ECR API at the stand-in, dummy credentials, no instance metadata. */
export function awsEnv(ecr: EcrStandIn): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_ECR: ecr.apiUrl,
    AWS_REGION: ecr.region,
    AWS_ACCESS_KEY_ID: 'AKIDSTANDIN',
    AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** A registry password as a user pastes it: GetAuthorizationToken's token, decoded (`AWS:<password>`). Asked before any run is counted. */
export async function registryPassword(ecr: EcrStandIn): Promise<string> {
  const client = new ECRClient({
    region: ecr.region,
    endpoint: ecr.apiUrl,
    credentials: { accessKeyId: 'AKIDSTANDIN', secretAccessKey: 'stand-in-secret' },
  });
  try {
    const answer = await client.send(new GetAuthorizationTokenCommand({}));
    const token = answer.authorizationData?.[0]?.authorizationToken;
    if (!token) throw new Error('the ECR stand-in gave no authorization token');
    return Buffer.from(token, 'base64').toString('utf8').replace(/^AWS:/, '');
  } finally {
    client.destroy();
  }
}
