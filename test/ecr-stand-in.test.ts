// The ECR stand-in (test/support/ecr-stand-in.ts), proved with the real @aws-sdk/client-ecr over
// real HTTP and with plain registry API requests: what the product's ECR support is tested against
// must answer as AWS's API reference and ECR's registry API say ECR answers.
import {
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CreateRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
  ListImagesCommand,
  type ImageIdentifier,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ECR_STAND_IN_START_TIMEOUT_MS, startEcrStandIn, type EcrStandIn } from './support/ecr-stand-in.js';
import { pushSignature } from './support/referrers.js';
import { MANIFEST_ACCEPT, MediaType, basicAuth, blobExists, getManifest, pushBlobStream, pushImage, readTags } from './support/seed.js';

describe('ECR stand-in', () => {
  let ecr: EcrStandIn;
  let client: ECRClient;
  let auth: string;

  beforeAll(async () => {
    ecr = await startEcrStandIn({ pageSize: 3 });
    client = new ECRClient({
      endpoint: ecr.apiUrl,
      region: ecr.region,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-for-tests' },
      maxAttempts: 1,
    });
    auth = await registryAuth();
  }, ECR_STAND_IN_START_TIMEOUT_MS);
  afterAll(async () => {
    client?.destroy();
    await ecr?.stop();
  });

  /** Basic credentials as ECR's docs say to use the token: it decodes to AWS:<password>. */
  async function registryAuth(): Promise<string> {
    const out = await client.send(new GetAuthorizationTokenCommand({}));
    const token = out.authorizationData?.[0]?.authorizationToken ?? '';
    const [user, password] = Buffer.from(token, 'base64').toString('utf8').split(':');
    expect(user).toBe('AWS');
    return basicAuth(user!, password!);
  }

  async function registryGet(path: string, authorization = auth, method = 'GET'): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await fetch(`${ecr.registryUrl}${path}`, { method, headers: { authorization, accept: MANIFEST_ACCEPT } });
    return { status: res.status, body: await res.text(), headers: res.headers };
  }

  async function listAll(repositoryName: string, maxResults?: number): Promise<{ ids: ImageIdentifier[]; pages: number }> {
    const ids: ImageIdentifier[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const out = await client.send(new ListImagesCommand({ repositoryName, nextToken, maxResults }));
      ids.push(...(out.imageIds ?? []));
      nextToken = out.nextToken;
      pages++;
    } while (nextToken);
    return { ids, pages };
  }

  it('issues a token that works as Basic auth on the registry API until it expires', async () => {
    const out = await client.send(new GetAuthorizationTokenCommand({}));
    const data = out.authorizationData?.[0];
    expect(data?.expiresAt).toBeInstanceOf(Date);
    expect(data!.expiresAt!.getTime() - Date.now()).toBeGreaterThan(11 * 60 * 60 * 1000);
    expect(data?.proxyEndpoint).toBe(ecr.registryUrl);
    const mine = `Basic ${data!.authorizationToken!}`;
    expect((await registryGet('/v2/', mine)).status).toBe(200);

    const anonymous = await registryGet('/v2/', '');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect((await registryGet('/v2/', basicAuth('AWS', 'not-a-token'))).status).toBe(401);

    ecr.expireTokens();
    expect((await registryGet('/v2/', mine)).status).toBe(401);
    expect((await registryGet('/v2/', auth)).status).toBe(401);
    auth = await registryAuth(); // a fresh token works again
    expect((await registryGet('/v2/', auth)).status).toBe(200);
  });

  it('refuses a token once its lifetime is over, with 403 DENIED where asked to answer as ECR has been seen to', async () => {
    const shortLived = await startEcrStandIn({ tokenTtlMs: 300, expiredTokenStatus: 403 });
    const shortClient = new ECRClient({
      endpoint: shortLived.apiUrl,
      region: shortLived.region,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' },
    });
    try {
      const out = await shortClient.send(new GetAuthorizationTokenCommand({}));
      const authorization = `Basic ${out.authorizationData![0]!.authorizationToken!}`;
      const probe = () => fetch(`${shortLived.registryUrl}/v2/`, { headers: { authorization } });
      expect((await probe()).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const expired = await probe();
      expect(expired.status).toBe(403);
      expect(await expired.json()).toEqual({ errors: [{ code: 'DENIED', message: 'Your authorization token has expired. Reauthenticate and try again.' }] });
      expect((await fetch(`${shortLived.registryUrl}/v2/`)).status).toBe(401); // no credentials at all: still 401
    } finally {
      shortClient.destroy();
      await shortLived.stop();
    }
  });

  it('refuses a push to a repository not created with NAME_UNKNOWN, and takes it once CreateRepository made it', async () => {
    const upload = await fetch(`${ecr.registryUrl}/v2/team/new-app/blobs/uploads/`, { method: 'POST', headers: { authorization: auth } });
    expect(upload.status).toBe(404);
    expect(await upload.json()).toEqual({
      errors: [{ code: 'NAME_UNKNOWN', message: `The repository with name 'team/new-app' does not exist in the registry with id '${ecr.registryId}'` }],
    });
    await expect(pushImage(ecr.registryUrl, 'team/new-app', 'v1', { auth })).rejects.toThrow(/404/);

    const created = await client.send(
      new CreateRepositoryCommand({
        repositoryName: 'team/new-app',
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/images' },
        tags: [{ Key: 'owner', Value: 'platform' }],
      }),
    );
    expect(created.repository).toMatchObject({
      repositoryName: 'team/new-app',
      registryId: ecr.registryId,
      repositoryUri: `${ecr.registryHost}/team/new-app`,
      imageTagMutability: 'MUTABLE',
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfiguration: { encryptionType: 'KMS', kmsKey: 'alias/images' },
    });
    expect(created.repository?.createdAt).toBeInstanceOf(Date);
    expect(ecr.repository('team/new-app')).toMatchObject({ tags: [{ Key: 'owner', Value: 'platform' }] });
    await expect(client.send(new CreateRepositoryCommand({ repositoryName: 'team/new-app' }))).rejects.toMatchObject({
      name: 'RepositoryAlreadyExistsException',
    });

    // Empty, a created repository lists no tags (rather than go-containerregistry's 404).
    expect(JSON.parse((await registryGet('/v2/team/new-app/tags/list')).body)).toEqual({ name: 'team/new-app', tags: [] });
    const image = await pushImage(ecr.registryUrl, 'team/new-app', 'v1', { auth });
    expect(await readTags(ecr.registryUrl, 'team/new-app', auth)).toEqual({ v1: image.digest });
    // Chunked uploads stream through the front (PATCH after PATCH, then the closing PUT).
    const big = await pushBlobStream(ecr.registryUrl, 'team/new-app', 9 * 1024 * 1024, 'big layer', auth);
    expect(await blobExists(ecr.registryUrl, 'team/new-app', big, auth)).toBe(true);
  });

  it('pages DescribeRepositories with nextToken, and names an unknown repository', async () => {
    for (const name of ['paged/a', 'paged/b', 'paged/c', 'paged/d']) ecr.createRepository(name);
    const names: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const out = await client.send(new DescribeRepositoriesCommand({ nextToken, maxResults: 2 }));
      expect(out.repositories!.length).toBeLessThanOrEqual(2);
      names.push(...out.repositories!.map((r) => r.repositoryName!));
      nextToken = out.nextToken;
      pages++;
    } while (nextToken);
    expect(names).toEqual(expect.arrayContaining(['paged/a', 'paged/b', 'paged/c', 'paged/d']));
    expect(new Set(names).size).toBe(names.length);
    expect(pages).toBe(Math.ceil(names.length / 2));

    // Without maxResults, the page size (3 here; 100 on ECR).
    const first = await client.send(new DescribeRepositoriesCommand({}));
    expect(first.repositories).toHaveLength(3);
    expect(first.nextToken).toBeDefined();

    const some = await client.send(new DescribeRepositoriesCommand({ repositoryNames: ['paged/c'] }));
    expect(some.repositories?.map((r) => r.repositoryName)).toEqual(['paged/c']);
    await expect(client.send(new DescribeRepositoriesCommand({ repositoryNames: ['paged/nope'] }))).rejects.toMatchObject({
      name: 'RepositoryNotFoundException',
      message: `The repository with name 'paged/nope' does not exist in the registry with id '${ecr.registryId}'`,
    });
    await expect(client.send(new DescribeRepositoriesCommand({ maxResults: 1001 }))).rejects.toMatchObject({ name: 'ValidationException' });
  });

  it('lists every tag with its digest in ListImages, paged, and untagged images without a tag', async () => {
    ecr.createRepository('list/app');
    const v1 = await pushImage(ecr.registryUrl, 'list/app', 'v1', { auth });
    const latest = (await pushImage(ecr.registryUrl, 'list/app', 'latest', { auth, seed: 'latest' })).digest;
    await pushTag('list/app', 'stable', (await getManifest(ecr.registryUrl, 'list/app', 'latest', auth))!);
    await pushTag('list/app', 'also-v1', v1);
    const untagged = await pushImage(ecr.registryUrl, 'list/app', null, { auth, seed: 'untagged' });

    const { ids, pages } = await listAll('list/app', 2);
    const expected = [
      { imageDigest: v1.digest, imageTag: 'also-v1' },
      { imageDigest: latest, imageTag: 'latest' },
      { imageDigest: latest, imageTag: 'stable' },
      { imageDigest: v1.digest, imageTag: 'v1' },
      { imageDigest: untagged.digest },
    ];
    expect(sortIds(ids)).toEqual(sortIds(expected));
    expect(pages).toBe(3);
    expect(sortIds((await listAll('list/app')).ids)).toEqual(sortIds(expected)); // default page size 3

    const onlyUntagged = await client.send(new ListImagesCommand({ repositoryName: 'list/app', filter: { tagStatus: 'UNTAGGED' } }));
    expect(onlyUntagged.imageIds).toEqual([{ imageDigest: untagged.digest }]);

    const details = await client.send(new DescribeImagesCommand({ repositoryName: 'list/app', imageIds: [{ imageTag: 'v1' }] }));
    expect(details.imageDetails?.[0]).toMatchObject({
      imageDigest: v1.digest,
      imageTags: ['also-v1', 'v1'],
      imageManifestMediaType: v1.mediaType,
      artifactMediaType: 'application/vnd.oci.image.config.v1+json',
    });
    expect(details.imageDetails?.[0]?.imagePushedAt).toBeInstanceOf(Date);
    await expect(client.send(new DescribeImagesCommand({ repositoryName: 'list/app', imageIds: [{ imageTag: 'nope' }] }))).rejects.toMatchObject({
      name: 'ImageNotFoundException',
    });
    await expect(client.send(new ListImagesCommand({ repositoryName: 'list/nope' }))).rejects.toMatchObject({ name: 'RepositoryNotFoundException' });
  });

  it('removes only the tag named in BatchDeleteImage by tag, and the whole image by digest', async () => {
    ecr.createRepository('delete/app');
    const image = await pushImage(ecr.registryUrl, 'delete/app', 'v1', { auth });
    await pushTag('delete/app', 'alias', image);
    const other = await pushImage(ecr.registryUrl, 'delete/app', 'v2', { auth, seed: 'other' });
    await pushTag('delete/app', 'v2-alias', other);

    const byTag = await client.send(new BatchDeleteImageCommand({ repositoryName: 'delete/app', imageIds: [{ imageTag: 'v1' }, { imageTag: 'gone' }] }));
    expect(byTag.imageIds).toEqual([{ imageDigest: image.digest, imageTag: 'v1' }]);
    expect(byTag.failures).toEqual([{ imageId: { imageTag: 'gone' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' }]);
    expect(await readTags(ecr.registryUrl, 'delete/app', auth)).toEqual({ alias: image.digest, v2: other.digest, 'v2-alias': other.digest });
    expect((await registryGet(`/v2/delete/app/manifests/${image.digest}`, auth, 'HEAD')).status).toBe(200);

    const mismatch = await client.send(
      new BatchDeleteImageCommand({ repositoryName: 'delete/app', imageIds: [{ imageTag: 'alias', imageDigest: other.digest }] }),
    );
    expect(mismatch.failures?.[0]?.failureCode).toBe('ImageTagDoesNotMatchDigest');

    const byDigest = await client.send(new BatchDeleteImageCommand({ repositoryName: 'delete/app', imageIds: [{ imageDigest: other.digest }] }));
    expect(sortIds(byDigest.imageIds ?? [])).toEqual(
      sortIds([
        { imageDigest: other.digest, imageTag: 'v2' },
        { imageDigest: other.digest, imageTag: 'v2-alias' },
      ]),
    );
    expect(await readTags(ecr.registryUrl, 'delete/app', auth)).toEqual({ alias: image.digest });
    expect((await registryGet(`/v2/delete/app/manifests/${other.digest}`, auth, 'HEAD')).status).toBe(404);

    // The last tag takes its image with it, as ECR's reference says.
    await client.send(new BatchDeleteImageCommand({ repositoryName: 'delete/app', imageIds: [{ imageTag: 'alias' }] }));
    expect((await registryGet(`/v2/delete/app/manifests/${image.digest}`, auth, 'HEAD')).status).toBe(404);
    expect((await listAll('delete/app')).ids).toEqual([]);
  });

  it('describes a referrer with its subjectManifestDigest and artifactMediaType, and BatchGetImage gives its manifest text', async () => {
    ecr.createRepository('signed/app');
    const image = await pushImage(ecr.registryUrl, 'signed/app', 'v1', { auth });
    const signature = await pushSignature(ecr.registryUrl, 'signed/app', image, { auth });

    const described = await client.send(new DescribeImagesCommand({ repositoryName: 'signed/app', imageIds: [{ imageDigest: signature.digest }] }));
    expect(described.imageDetails?.[0]).toMatchObject({
      imageDigest: signature.digest,
      imageManifestMediaType: MediaType.ociManifest,
      artifactMediaType: signature.artifactType,
      subjectManifestDigest: image.digest,
    });
    expect(described.imageDetails?.[0]?.imageTags).toBeUndefined();
    const subject = await client.send(new DescribeImagesCommand({ repositoryName: 'signed/app', imageIds: [{ imageTag: 'v1' }] }));
    expect(subject.imageDetails?.[0]?.subjectManifestDigest).toBeUndefined();

    const got = await client.send(
      new BatchGetImageCommand({
        repositoryName: 'signed/app',
        imageIds: [{ imageDigest: signature.digest }, { imageTag: 'gone' }],
        acceptedMediaTypes: [MediaType.ociManifest],
      }),
    );
    expect(got.images?.map((i) => i.imageId)).toEqual([{ imageDigest: signature.digest }]);
    expect(Buffer.from(got.images?.[0]?.imageManifest ?? '', 'utf8')).toEqual(Buffer.from(signature.bytes));
    expect(got.images?.[0]?.imageManifestMediaType).toBe(MediaType.ociManifest);
    expect(got.failures).toEqual([{ imageId: { imageTag: 'gone' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' }]);

    const refused = await client.send(
      new BatchGetImageCommand({ repositoryName: 'signed/app', imageIds: [{ imageDigest: signature.digest }], acceptedMediaTypes: [MediaType.dockerManifest] }),
    );
    expect(refused.images).toEqual([]);
    expect(refused.failures?.[0]?.failureCode).toBe('UnsupportedImageType');
    await expect(client.send(new BatchGetImageCommand({ repositoryName: 'nowhere/app', imageIds: [{ imageTag: 'v1' }] }))).rejects.toMatchObject({
      name: 'RepositoryNotFoundException',
    });
  });

  it('refuses DELETE and the catalog on the registry API with 405', async () => {
    ecr.createRepository('refuse/app');
    const image = await pushImage(ecr.registryUrl, 'refuse/app', 'v1', { auth });
    for (const path of [`/v2/refuse/app/manifests/${image.digest}`, '/v2/refuse/app/manifests/v1', `/v2/refuse/app/blobs/${image.configDigest}`]) {
      const res = await registryGet(path, auth, 'DELETE');
      expect(res.status).toBe(405);
      expect(JSON.parse(res.body).errors[0].code).toBe('UNSUPPORTED');
    }
    expect((await registryGet('/v2/_catalog')).status).toBe(405);
    expect(await readTags(ecr.registryUrl, 'refuse/app', auth)).toEqual({ v1: image.digest });
    expect(ecr.registryRequests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([405, 405, 405]);
  });

  it('refuses to move a tag of an IMMUTABLE repository with TAG_INVALID, and takes a new tag', async () => {
    ecr.createRepository('fixed/app', { imageTagMutability: 'IMMUTABLE' });
    const v1 = await pushImage(ecr.registryUrl, 'fixed/app', 'v1', { auth });
    const moved = await fetch(`${ecr.registryUrl}/v2/fixed/app/manifests/v1`, {
      method: 'PUT',
      headers: { authorization: auth, 'content-type': v1.mediaType },
      body: new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(v1.bytes)), annotations: { moved: 'yes' } })),
    });
    expect(moved.status).toBe(400);
    expect(await moved.json()).toEqual({
      errors: [
        {
          code: 'TAG_INVALID',
          message: "The image tag 'v1' already exists in the 'fixed/app' repository and cannot be overwritten because the repository is immutable.",
        },
      ],
    });
    await pushTag('fixed/app', 'v1', v1); // the same digest again is no move
    await pushTag('fixed/app', 'v1-copy', v1);
    expect(await readTags(ecr.registryUrl, 'fixed/app', auth)).toEqual({ v1: v1.digest, 'v1-copy': v1.digest });

    ecr.createRepository('mixed/app', {
      imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
      imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest*' }],
    });
    const first = await pushImage(ecr.registryUrl, 'mixed/app', 'latest', { auth });
    await pushImage(ecr.registryUrl, 'mixed/app', 'latest', { auth, seed: 'moved' });
    await pushTag('mixed/app', 'v1', first);
    await expect(pushImage(ecr.registryUrl, 'mixed/app', 'v1', { auth, seed: 'moved' })).rejects.toThrow(/TAG_INVALID/);
  });

  it('fails the next calls of an operation with the error type asked for, as the SDK names it', async () => {
    ecr.failNext('DescribeRepositories', 'AccessDeniedException');
    const denied = await client.send(new DescribeRepositoriesCommand({})).catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(Error);
    expect(denied).toMatchObject({ name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } });
    await expect(client.send(new DescribeRepositoriesCommand({}))).resolves.toBeDefined();

    ecr.failNext('ListImages', 'ThrottlingException', 2);
    ecr.createRepository('throttled/app');
    const retrying = new ECRClient({
      endpoint: ecr.apiUrl,
      region: ecr.region,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' },
      maxAttempts: 3,
    });
    const calls = ecr.apiCalls.length;
    await expect(retrying.send(new ListImagesCommand({ repositoryName: 'throttled/app' }))).resolves.toMatchObject({ imageIds: [] });
    expect(ecr.apiCalls.slice(calls).map((c) => c.operation)).toEqual(['ListImages', 'ListImages', 'ListImages']);
    retrying.destroy();

    const elsewhere = new ECRClient({
      endpoint: ecr.apiUrl,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    await expect(elsewhere.send(new DescribeRepositoriesCommand({}))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
    elsewhere.destroy();
    expect(ecr.apiCalls.find((c) => c.operation === 'CreateRepository')?.input).toMatchObject({ repositoryName: 'team/new-app' });
  });

  /** Puts an already-pushed manifest under one more tag. */
  async function pushTag(repo: string, tag: string, image: { bytes: Uint8Array; mediaType: string }): Promise<void> {
    const res = await fetch(`${ecr.registryUrl}/v2/${repo}/manifests/${tag}`, {
      method: 'PUT',
      headers: { authorization: auth, 'content-type': image.mediaType },
      body: image.bytes as Uint8Array<ArrayBuffer>,
    });
    expect(res.status, await res.text()).toBe(201);
  }
});

function sortIds(ids: ImageIdentifier[]): ImageIdentifier[] {
  const key = (id: ImageIdentifier) => `${id.imageTag ?? '~'} ${id.imageDigest}`;
  return [...ids].sort((a, b) => key(a).localeCompare(key(b)));
}
