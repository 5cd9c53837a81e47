// The CLI bundle's split (scripts/build.mjs): the ECR SDK and the STS client used for an ECR
// roleArn sit in chunks of their own under dist/chunks/, loaded when an ECR registry is first
// used. Which files the real `geo-sync` process loads is read from Node's module loader.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync } from './support/cli.js';
import { ECR_STAND_IN_START_TIMEOUT_MS, startEcrStandIn, type EcrStandIn } from './support/ecr-stand-in.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';

const CHUNKS = fileURLToPath(new URL('../dist/chunks/', import.meta.url));

/** Strings only the SDK's service clients hold: ECR's JSON 1.1 target prefix, STS's service name. */
const ECR_SDK = 'AmazonEC2ContainerRegistry_V20150921';
const STS_SDK = 'AWSSecurityTokenServiceV20110615';

let plain: RegistryPair;
let ecr: EcrStandIn;
let scratch: string;

beforeAll(async () => {
  [plain, ecr] = await Promise.all([startRegistryPair(), startEcrStandIn()]);
  scratch = mkdtempSync(join(tmpdir(), 'geo-sync-bundle-'));
}, ECR_STAND_IN_START_TIMEOUT_MS);
afterAll(async () => {
  await Promise.all([plain?.stop(), ecr?.stop()]);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

let runs = 0;
/** Runs geo-sync; returns its result and the text of every file it loaded as a module. */
async function runRecordingLoads(args: string[], env: Record<string, string> = {}) {
  const recordLoadsTo = join(scratch, `loads-${++runs}.txt`);
  const result = await runGeoSync(args, env, { recordLoadsTo });
  const files = readFileSync(recordLoadsTo, 'utf8')
    .trim()
    .split('\n')
    .map((url) => fileURLToPath(url));
  return { result, files, holding: (marker: string) => files.filter((file) => readFileSync(file, 'utf8').includes(marker)) };
}

describe('the CLI bundle loads the ECR SDK only where an ECR registry is used', () => {
  it('the SDK is in the bundle: each marker is in a chunk under dist/chunks/', () => {
    const chunkText = readdirSync(CHUNKS)
      .filter((name) => name.endsWith('.mjs'))
      .map((name) => readFileSync(join(CHUNKS, name), 'utf8'));
    expect(chunkText.some((text) => text.includes(ECR_SDK))).toBe(true);
    expect(chunkText.some((text) => text.includes(STS_SDK))).toBe(true);
  });

  it('`geo-sync --help` loads neither the ECR client nor STS', async () => {
    const { result, files, holding } = await runRecordingLoads(['--help']);

    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Usage: geo-sync');
    expect(files.some((file) => file.endsWith(join('dist', 'cli.mjs')))).toBe(true);
    expect(holding(ECR_SDK)).toEqual([]);
    expect(holding(STS_SDK)).toEqual([]);
  });

  it('`geo-sync sync` between two plain registries loads neither', async () => {
    const repo = 'bundle/plain';
    await pushImage(plain.primary.url, repo, 'v1');
    const env = { GEO_SYNC_PRIMARY_URL: plain.primary.url, GEO_SYNC_SECONDARY_URL: plain.secondary.url };
    const { result, holding } = await runRecordingLoads(['sync', repo, '--json'], env);

    expect(result.code, result.stderr).toBe(0);
    expect(await readTags(plain.secondary.url, repo)).toEqual(await readTags(plain.primary.url, repo));
    expect(holding(ECR_SDK)).toEqual([]);
    expect(holding(STS_SDK)).toEqual([]);
  });

  it('`geo-sync sync` to an ECR secondary loads the ECR client from its chunk, and copies the tag', async () => {
    const repo = 'bundle/ecr';
    await pushImage(plain.primary.url, repo, 'v1');
    const env = {
      GEO_SYNC_PRIMARY_URL: plain.primary.url,
      GEO_SYNC_SECONDARY_URL: ecr.registryUrl,
      GEO_SYNC_SECONDARY_TYPE: 'ecr',
      GEO_SYNC_SECONDARY_REGION: ecr.region,
      AWS_ENDPOINT_URL_ECR: ecr.apiUrl,
      AWS_REGION: ecr.region,
      AWS_ACCESS_KEY_ID: 'AKIDSTANDIN',
      AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const { result, holding } = await runRecordingLoads(['sync', repo, '--json'], env);

    expect(result.code, result.stderr).toBe(0);
    expect(await readTags(ecr.backingRegistryUrl, repo)).toEqual(await readTags(plain.primary.url, repo));
    const ecrFiles = holding(ECR_SDK);
    expect(ecrFiles.length).toBeGreaterThan(0);
    expect(ecrFiles.every((file) => file.startsWith(CHUNKS))).toBe(true);
  });
});
