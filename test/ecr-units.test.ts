// ECR's parts that need no registry: which hosts are ECR, the configuration that declares one, the
// registry token cache, the authenticator with fetched credentials, and the batch read of manifests
// (its ECR API a fake that answers as told, the registry API a map).
import { describe, expect, it } from 'vitest';
import { endpointsFromEnv, parseSecondaries } from '../shared/engine/config/index.js';
import { Authenticator } from '../shared/engine/registry/auth.js';
import { GeoSyncError } from '../shared/engine/base/errors.js';
import { silentLogger } from '../shared/engine/base/log.js';
import { digestOf, type RawManifest } from '../shared/engine/base/oci.js';
import type { BatchedManifest } from '../shared/engine/registry/ecr/api.js';
import { BATCH_MANIFEST_TYPES, EcrManifests } from '../shared/engine/registry/ecr/manifests.js';
import { ecrHost } from '../shared/engine/registry/ecr/settings.js';
import { RegistryTokens, decodeAuthorizationToken } from '../shared/engine/registry/ecr/token.js';

describe('which hosts are ECR', () => {
  it.each([
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com', { registryId: '123456789012', region: 'eu-west-1' }],
    ['123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn', { registryId: '123456789012', region: 'cn-north-1' }],
    ['123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com', { registryId: '123456789012', region: 'us-gov-west-1' }],
    ['123456789012.dkr-ecr.ap-southeast-2.on.aws', { registryId: '123456789012', region: 'ap-southeast-2' }],
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com:443', { registryId: '123456789012', region: 'eu-west-1' }],
  ])('%s is ECR', (host, expected) => expect(ecrHost(host)).toEqual(expected));

  it.each([
    'registry.example.com',
    '12345.dkr.ecr.eu-west-1.amazonaws.com',
    '123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com',
    'public.ecr.aws',
    '127.0.0.1:5000',
  ])('%s is not', (host) => expect(ecrHost(host)).toBeUndefined());
});

describe('ECR in the configuration', () => {
  it('an ECR host without a password is ECR, its region and account from the host', () => {
    const [site] = parseSecondaries([{ name: 'dr', url: 'https://123456789012.dkr.ecr.eu-west-1.amazonaws.com' }], 'test');
    expect(site!.endpoint).toEqual({ url: 'https://123456789012.dkr.ecr.eu-west-1.amazonaws.com', ecr: { region: 'eu-west-1', registryId: '123456789012' } });
  });

  it('an ECR host with a pasted password stays a plain registry, as before', () => {
    const [site] = parseSecondaries([{ name: 'dr', url: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', username: 'AWS', password: 'token' }], 'test');
    expect(site!.endpoint.ecr).toBeUndefined();
  });

  it('declared: type ecr on any host, with its region, role and repository settings; the URL from the account when not given', () => {
    const [loopback, byAccount] = parseSecondaries(
      [
        {
          name: 'a',
          url: 'http://127.0.0.1:5000',
          type: 'ecr',
          region: 'us-east-1',
          roleArn: 'arn:aws:iam::210987654321:role/geo-sync',
          repositorySettings: { tagMutability: 'IMMUTABLE', encryptionType: 'KMS', kmsKey: 'alias/dr', scanOnPush: true, resourceTags: { team: 'platform' } },
        },
        { name: 'b', type: 'ecr', region: 'cn-north-1', registryId: '210987654321' },
      ],
      'test',
    );
    expect(loopback!.endpoint.ecr).toEqual({
      region: 'us-east-1',
      roleArn: 'arn:aws:iam::210987654321:role/geo-sync',
      repositorySettings: { tagMutability: 'IMMUTABLE', encryptionType: 'KMS', kmsKey: 'alias/dr', scanOnPush: true, resourceTags: { team: 'platform' } },
    });
    expect(byAccount!.endpoint).toEqual({
      url: 'https://210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn',
      ecr: { region: 'cn-north-1', registryId: '210987654321' },
    });
  });

  it.each([
    [{ name: 'a', url: 'http://h:1', type: 'ecr' }, /test\[0\] \(a\): an ECR registry needs its region/],
    [{ name: 'a', url: 'http://h:1', region: 'eu-west-1' }, /region only for an ECR registry/],
    [{ name: 'a', url: 'http://h:1', type: 'ecr', region: 'eu-west-1', password: 'x' }, /signs in with IAM/],
    [{ name: 'a', type: 'ecr', region: 'eu-west-1' }, /needs its url or its registryId/],
    [{ name: 'a', url: 'http://h:1', type: 'ecr', region: 'Europe' }, /region: an AWS region/],
    [{ name: 'a', url: 'http://h:1', type: 'ecr', region: 'eu-west-1', registryId: '42' }, /registryId: an AWS account id/],
    [
      { name: 'a', url: 'http://h:1', type: 'ecr', region: 'eu-west-1', repositorySettings: { mutability: 'MUTABLE' } },
      /unknown field "mutability" in repositorySettings/,
    ],
    [{ name: 'a', url: 'http://h:1', type: 'ecr', region: 'eu-west-1', repositorySettings: { kmsKey: 'k' } }, /kmsKey needs encryptionType KMS/],
    [
      { name: 'a', url: 'http://h:1', type: 'ecr', region: 'eu-west-1', repositorySettings: { tagMutability: 'IMMUTABLE_WITH_EXCLUSION' } },
      /tagMutabilityExclusions/,
    ],
    [{ name: 'a', url: 'http://h:1', type: 'gcr' }, /type/],
    [{ name: 'a' }, /"url" is required/],
  ])('%j is refused', (entry, message) => {
    expect(() => parseSecondaries([entry], 'test')).toThrow(message);
  });

  it('the primary from the environment: GEO_SYNC_PRIMARY_TYPE=ecr with _REGION, _REGISTRY_ID, _ROLE_ARN; the URL from the account when not given', () => {
    const env = {
      GEO_SYNC_PRIMARY_TYPE: 'ecr',
      GEO_SYNC_PRIMARY_REGION: 'eu-central-1',
      GEO_SYNC_PRIMARY_REGISTRY_ID: '123456789012',
      GEO_SYNC_PRIMARY_ROLE_ARN: 'arn:aws:iam::123456789012:role/reader',
      GEO_SYNC_SECONDARY_URL: 'http://127.0.0.1:5000',
    };
    expect(endpointsFromEnv(env).primary).toEqual({
      url: 'https://123456789012.dkr.ecr.eu-central-1.amazonaws.com',
      ecr: { region: 'eu-central-1', registryId: '123456789012', roleArn: 'arn:aws:iam::123456789012:role/reader' },
    });
    expect(endpointsFromEnv(env).secondaries[0]!.endpoint).toEqual({ url: 'http://127.0.0.1:5000' });
    expect(() => endpointsFromEnv({ ...env, GEO_SYNC_PRIMARY_TYPE: 'quay' })).toThrow(/GEO_SYNC_PRIMARY_TYPE is ecr or registry/);
    expect(() => endpointsFromEnv({ ...env, GEO_SYNC_PRIMARY_REGION: 'nowhere' })).toThrow(/GEO_SYNC_PRIMARY_REGION: an AWS region/);
    expect(() => endpointsFromEnv({ GEO_SYNC_PRIMARY_TYPE: 'ecr', GEO_SYNC_PRIMARY_REGION: 'eu-central-1' })).toThrow(/no primary registry/);
    // GEO_SYNC_PRIMARY_TYPE=registry keeps an ECR host a plain registry.
    const plain = endpointsFromEnv({
      GEO_SYNC_PRIMARY_URL: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
      GEO_SYNC_PRIMARY_TYPE: 'registry',
      GEO_SYNC_SECONDARY_URL: 'h:1',
    });
    expect(plain.primary.ecr).toBeUndefined();
  });
});

describe('ECR registry tokens', () => {
  const token = (password: string) => Buffer.from(`AWS:${password}`).toString('base64');

  it('decodes AWS:<password>, and names no token in its error', () => {
    expect(decodeAuthorizationToken(token('p:w'), 'r')).toEqual({ username: 'AWS', password: 'p:w' });
    const bad = Buffer.from('no-colon-secret').toString('base64');
    expect(() => decodeAuthorizationToken(bad, 'r')).toThrow(/not base64 of user:password/);
    try {
      decodeAuthorizationToken(bad, 'r');
    } catch (error) {
      expect((error as Error).message).not.toContain('no-colon-secret');
      expect((error as Error).message).not.toContain(bad);
    }
  });

  it('is fetched once for callers at the same time, kept until shortly before expiresAt, renewed then', async () => {
    let now = 0;
    let fetches = 0;
    const tokens = new RegistryTokens(
      async () => ({ authorizationToken: token(`p${++fetches}`), expiresAt: new Date(now + 12 * 3600_000) }),
      'r',
      () => now,
    );
    const first = await Promise.all([tokens.get(), tokens.get(), tokens.get()]);
    expect(first.map((c) => c.password)).toEqual(['p1', 'p1', 'p1']);
    now = 11.5 * 3600_000;
    expect((await tokens.get()).password).toBe('p1');
    now = 11.76 * 3600_000; // within 15 minutes of expiry
    expect((await tokens.get()).password).toBe('p2');
    expect(fetches).toBe(2);
  });

  it('refused: the refused token alone is dropped; a stale refusal after a renewal keeps the new one', async () => {
    let fetches = 0;
    const tokens = new RegistryTokens(async () => ({ authorizationToken: token(`p${++fetches}`), expiresAt: new Date(Date.now() + 3600_000) }), 'r');
    const old = await tokens.get();
    tokens.refused(old);
    const renewed = await tokens.get();
    expect(renewed.password).toBe('p2');
    tokens.refused(old);
    expect((await tokens.get()).password).toBe('p2');
    expect(fetches).toBe(2);
  });
});

describe('the authenticator with fetched credentials', () => {
  it('sends them from the first request; after a 401 to them, drops them and retries once with new ones', async () => {
    let issued = 0;
    const refused: string[] = [];
    const provider = {
      current: { username: 'AWS', password: 'one' },
      async get() {
        return this.current;
      },
      refused(credentials: { password: string }) {
        refused.push(credentials.password);
        this.current = { username: 'AWS', password: `renewed-${++issued}` };
      },
    };
    const auth = new Authenticator(new URL('https://r.example'), provider, async () => {
      throw new Error('no token requests');
    });
    const header = await auth.header(['repository:a:pull']);
    expect(header).toBe(`Basic ${Buffer.from('AWS:one').toString('base64')}`);
    expect(await auth.unauthorized('Basic realm="r"', [], header)).toBe(true);
    expect(refused).toEqual(['one']);
    expect(await auth.header([])).toBe(`Basic ${Buffer.from('AWS:renewed-1').toString('base64')}`);
    // A 401 to credentials already replaced drops nothing more.
    expect(await auth.unauthorized('Basic realm="r"', [], header)).toBe(true);
    expect(refused).toEqual(['one']);
  });

  it('fixed credentials behave as before: no header until the first 401, a refusal of them is final', async () => {
    const auth = new Authenticator(new URL('https://r.example'), { username: 'u', password: 'p' }, async () => {
      throw new Error('no token requests');
    });
    expect(await auth.header([])).toBeUndefined();
    expect(await auth.unauthorized('Basic realm="r"', [], undefined)).toBe(true);
    const header = await auth.header([]);
    expect(header).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(await auth.unauthorized('Basic realm="r"', [], header)).toBe(false);
  });
});

describe('manifests read through BatchGetImage', () => {
  const INDEX = 'application/vnd.oci.image.index.v1+json';
  const manifest = (seed: string, mediaType?: string): RawManifest => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, ...(mediaType && { mediaType }), manifests: [], annotations: { seed } }));
    return { digest: digestOf(bytes), mediaType: mediaType ?? '', bytes };
  };

  /** An EcrManifests whose BatchGetImage answers with `answer` (or throws it), and whose registry API holds `registry`. */
  function reader(registry: RawManifest[], answer: (digests: readonly string[]) => Map<string, BatchedManifest> | Error) {
    const asked: { digests: readonly string[]; mediaTypes: readonly string[] }[] = [];
    const gets: string[] = [];
    const api = {
      async manifestsByDigest(_repository: string, digests: readonly string[], mediaTypes: readonly string[]) {
        asked.push({ digests, mediaTypes });
        const answered = answer(digests);
        if (answered instanceof Error) throw answered;
        return answered;
      },
    };
    const get = async (_repository: string, digest: string) => {
      gets.push(digest);
      return registry.find((m) => m.digest === digest) ?? null;
    };
    return { manifests: new EcrManifests(api, (repository) => repository, get, silentLogger, 'ecr.test'), asked, gets };
  }
  const ecrError = (name: string) =>
    new GeoSyncError('ECR_API_FAILED', `ECR BatchGetImage failed: ${name}`, { cause: Object.assign(new Error(name), { name }) });

  it('asks for the index types with the image types; takes the type ECR names, else the manifest own; GETs none', async () => {
    const [named, unnamed] = [manifest('a'), manifest('b', INDEX)];
    const { manifests, asked, gets } = reader(
      [],
      () =>
        new Map([
          [named.digest, { text: named.bytes.toString(), mediaType: INDEX }],
          [unnamed.digest, { text: unnamed.bytes.toString() }],
        ]),
    );
    const found = await manifests.byDigest('app', [named.digest, unnamed.digest], 4);
    expect([...found.values()].map((m) => [m.digest, m.mediaType])).toEqual([
      [named.digest, INDEX],
      [unnamed.digest, INDEX],
    ]);
    expect(found.get(named.digest)!.bytes.equals(named.bytes)).toBe(true);
    expect(asked[0]!.mediaTypes).toEqual(BATCH_MANIFEST_TYPES);
    expect(gets).toEqual([]);
  });

  it('bytes that do not hash to the digest asked for, and a digest ECR left out, are read over the registry API', async () => {
    const [converted, missing] = [manifest('c', INDEX), manifest('d', INDEX)];
    const { manifests, gets } = reader(
      [converted, missing],
      () => new Map([[converted.digest, { text: `${converted.bytes.toString()}\n`, mediaType: INDEX }]]),
    );
    const found = await manifests.byDigest('app', [converted.digest, missing.digest], 4);
    expect(gets.sort()).toEqual([converted.digest, missing.digest].sort());
    expect(found.get(converted.digest)!.bytes.equals(converted.bytes)).toBe(true);
    expect(found.has(missing.digest)).toBe(true);
  });

  it.each([
    ['InvalidParameterException', 1],
    ['AccessDeniedException', 1],
    ['ServerException', 2],
  ])('a call refused with %s: read over the registry API; BatchGetImage asked %i times in two reads', async (name, calls) => {
    const one = manifest('e', INDEX);
    const { manifests, asked, gets } = reader([one], () => ecrError(name));
    expect((await manifests.byDigest('app', [one.digest], 4)).get(one.digest)?.digest).toBe(one.digest);
    expect((await manifests.byDigest('app', [one.digest], 4)).get(one.digest)?.digest).toBe(one.digest);
    expect(asked).toHaveLength(calls);
    expect(gets).toEqual([one.digest, one.digest]);
  });
});
