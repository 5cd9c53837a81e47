// Amazon ECR as a side (issue 29): what a no-op sync and a verify cost the ECR side, read through
// ECR's API (tags and digests from ListImages) against the same registry read as a plain one (the
// token pasted as a password: one HEAD per tag, as before ECR was a registry type). ECR cannot run
// here: the side is the stand-in of test/support/ecr-stand-in.ts, which records every registry
// request and every ECR API call it receives; the other side is a docker-registry. Both ways: ECR
// as the secondary, then the same repository with ECR as the primary. The CLI runs as a process.
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { performance } from 'node:perf_hooks';
import { startEcrStandIn, type EcrStandIn } from '../test/support/ecr-stand-in.js';
import type { RegistryRequest } from '../test/support/ecr-registry-front.js';
import { readTags } from '../test/support/seed.js';
import { expectOk, expectSame, int, log, registry, runOurs, seconds } from './harness.js';
import type { Row } from './report.js';
import { pushBaseLayer, seedRepository } from './seed.js';

const REPOSITORY = 'bench/ecr';
/** BENCH_ECR_TAGS: tags seeded on the docker-registry and copied once to the ECR side. */
const DEFAULT_TAGS = 200;
const BASE_LAYER_BYTES = 64 * 1024;
/** The goal of issue 29: registry requests to an ECR side per tag, against 1.0 HEAD a tag before. */
const GOAL_PER_TAG = 0.01;

type Role = 'secondary' | 'primary';
type Command = 'no-op sync' | 'verify';
type Reading = 'ecr' | 'plain';
/** Referrers on (the default), and off (--no-referrers): an ECR side serves the referrers API, which a primary's referrers are read through. */
type Referrers = 'on' | 'off';

/** What one CLI run cost the ECR side. */
interface SideCost {
  registryRequests: number;
  /** Registry requests by kind (HEAD manifest, GET manifest, referrers, tag list, ping, GitLab probe, other). */
  byKind: Record<string, number>;
  /** ECR API calls by operation. */
  apiCalls: Record<string, number>;
  /** The requests counted as `other`, as sent (method, path, status answered). */
  other: string[];
  wallMs: number;
}

interface Scenario {
  role: Role;
  command: Command;
  costs: Record<Referrers, Record<Reading, SideCost>>;
}

const READING_LABEL: Record<Reading, string> = { ecr: 'read through the ECR API', plain: 'read as a plain registry (token as password)' };

/** The ECR rows: one initial copy to the ECR side, then each scenario read both ways. */
export async function benchEcr(): Promise<{ rows: Row[]; details: Record<string, unknown> }> {
  const tags = int(process.env.BENCH_ECR_TAGS, DEFAULT_TAGS);
  if (tags === 0) throw new Error('BENCH_ECR_TAGS must be at least 1');
  log(`== ECR: ${tags} tags, a docker-registry and the ECR stand-in (ECR API + registry API in front of go-containerregistry's registry) ==`);
  const [ecr, plain] = await Promise.all([startEcrStandIn(), registry()]);
  try {
    const t = performance.now();
    await seedRepository(plain.url, REPOSITORY, tags, await pushBaseLayer(plain.url, REPOSITORY, BASE_LAYER_BYTES));
    const truth = await readTags(plain.url, REPOSITORY);
    log(`ECR: seeded ${Object.keys(truth).length} tags on the docker-registry in ${seconds(performance.now() - t)}`);

    const password = await registryPassword(ecr);
    const env = (role: Role, reading: Reading) => ({ ...awsEnv(ecr), ...sides(ecr, plain.url, role, reading, password) });
    const initial = expectOk(await runOurs(['sync', REPOSITORY, '--json'], { env: env('secondary', 'ecr') }), 'geo-sync sync (initial, to ECR)');
    log(`ECR: initial sync to the ECR side ${seconds(initial.wallMs)}`);
    await expectSame(ecr.backingRegistryUrl, truth, 'the ECR side after the initial sync', REPOSITORY);

    const scenarios: Scenario[] = [];
    for (const role of ['secondary', 'primary'] as const) {
      for (const command of ['no-op sync', 'verify'] as const) {
        const costs = { on: {}, off: {} } as Scenario['costs'];
        for (const referrers of ['on', 'off'] as const) {
          const args = [command === 'verify' ? 'verify' : 'sync', REPOSITORY, '--json', ...(referrers === 'off' ? ['--no-referrers'] : [])];
          for (const reading of ['ecr', 'plain'] as const) {
            const what = `ECR ${role}, ${command}${referrers === 'off' ? ' --no-referrers' : ''}, ${READING_LABEL[reading]}`;
            const cost = await costOf(ecr, args, env(role, reading), `geo-sync ${what}`);
            costs[referrers][reading] = cost;
            log(`${what}: ${seconds(cost.wallMs)}; ${describeCost(cost)}`);
          }
        }
        scenarios.push({ role, command, costs });
      }
    }
    await expectSame(plain.url, truth, 'the docker-registry after the runs', REPOSITORY);
    await expectSame(ecr.backingRegistryUrl, truth, 'the ECR side after the runs', REPOSITORY);
    return {
      rows: scenarios.flatMap((scenario) => rowsOf(scenario, tags)),
      details: { tags, repository: REPOSITORY, initialSyncMs: initial.wallMs, scenarios },
    };
  } finally {
    await Promise.all([ecr.stop(), plain.stop()]);
  }
}

/** The SDK's own variables: the ECR API at the stand-in, dummy credentials, no instance metadata. */
function awsEnv(ecr: EcrStandIn): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_ECR: ecr.apiUrl,
    AWS_REGION: ecr.region,
    AWS_ACCESS_KEY_ID: 'AKIDSTANDIN',
    AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** The pair's variables: the ECR side declared ECR (ours), or a plain registry with the token as its password (before). */
function sides(ecr: EcrStandIn, plainUrl: string, role: Role, reading: Reading, password: string): Record<string, string> {
  const ecrRole = role === 'primary' ? 'PRIMARY' : 'SECONDARY';
  const otherRole = role === 'primary' ? 'SECONDARY' : 'PRIMARY';
  const ecrSide =
    reading === 'ecr'
      ? { [`GEO_SYNC_${ecrRole}_TYPE`]: 'ecr', [`GEO_SYNC_${ecrRole}_REGION`]: ecr.region }
      : { [`GEO_SYNC_${ecrRole}_USERNAME`]: 'AWS', [`GEO_SYNC_${ecrRole}_PASSWORD`]: password };
  return { [`GEO_SYNC_${ecrRole}_URL`]: ecr.registryUrl, ...ecrSide, [`GEO_SYNC_${otherRole}_URL`]: plainUrl };
}

/** A registry password as a user pastes it: GetAuthorizationToken's token, decoded (`AWS:<password>`). Asked before any run is counted. */
async function registryPassword(ecr: EcrStandIn): Promise<string> {
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

/** One CLI run; the ECR side's registry requests and API calls received during it. */
async function costOf(ecr: EcrStandIn, args: string[], env: Record<string, string>, what: string): Promise<SideCost> {
  const requestsBefore = ecr.registryRequests.length;
  const callsBefore = ecr.apiCalls.length;
  const run = expectOk(await runOurs(args, { env }), what);
  const requests = ecr.registryRequests.slice(requestsBefore);
  const apiCalls: Record<string, number> = {};
  for (const call of ecr.apiCalls.slice(callsBefore)) apiCalls[call.operation] = (apiCalls[call.operation] ?? 0) + 1;
  const byKind: Record<string, number> = {};
  for (const request of requests) byKind[kindOf(request)] = (byKind[kindOf(request)] ?? 0) + 1;
  const writes = requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
  if (writes.length > 0) log(`WARNING: ${what} wrote ${writes.length} times to the ECR side`);
  const other = requests.filter((r) => kindOf(r) === 'other').map((r) => `${r.method} ${r.path} ${r.status}`);
  return { registryRequests: requests.length, byKind, apiCalls, other, wallMs: run.wallMs };
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

const listed = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, n]) => `${name} ${n}`)
    .join(', ') || 'none';

const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);

function describeCost(cost: SideCost): string {
  return `${cost.registryRequests} registry requests (${listed(cost.byKind)}); ECR API: ${listed(cost.apiCalls)}`;
}

function rowsOf({ role, command, costs }: Scenario, tags: number): Row[] {
  const requestsRow = (referrers: Referrers): Row => {
    const { ecr: ours, plain: before } = costs[referrers];
    return {
      size: tags,
      measure: `ECR ${role}: ${command}${referrers === 'off' ? ' --no-referrers' : ''}, registry requests to the ECR side per tag (${listed(ours.byKind)})`,
      unit: 'req/tag',
      ours: ours.registryRequests / tags,
      peer: before.registryRequests / tags,
      peerName: 'plain registry',
      ...(before.registryRequests > 0 && { ratio: ours.registryRequests / before.registryRequests }),
      target: `<= ${GOAL_PER_TAG}`,
      meets: ours.registryRequests / tags <= GOAL_PER_TAG,
    };
  };
  const { ecr: ours, plain: before } = costs.on;
  const oursCalls = total(ours.apiCalls);
  const beforeCalls = total(before.apiCalls);
  return [
    requestsRow('on'),
    requestsRow('off'),
    {
      size: tags,
      measure: `ECR ${role}: ${command}, ECR API calls per run (${listed(ours.apiCalls)})`,
      unit: 'calls',
      ours: oursCalls,
      peer: beforeCalls,
      peerName: 'plain registry',
      ...(beforeCalls > 0 && { ratio: oursCalls / beforeCalls }),
      target: '-',
    },
  ];
}
