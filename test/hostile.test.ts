import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { runGeoSync } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { readTags } from './support/seed.js';

/**
 * A hostile or broken primary: each repository serves one good tag and one bad answer. The good
 * tag must still be copied, the bad one reported by name with a clear error, and nothing written
 * for it. Only a fake can misbehave on cue; the secondary is a real registry.
 */
const sha = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const config = Buffer.from('{"os":"linux","architecture":"amd64"}');
const layer = Buffer.from('layer bytes');
const image = (layerDigest = sha(layer)) =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );

interface Served {
  bytes: Buffer;
  mediaType: string;
  digest?: string;
}
const badLayer = Buffer.from('other bytes');
const cases: Record<string, { served: Served; error: RegExp }> = {
  notjson: { served: { bytes: Buffer.from('this is not json'), mediaType: OCI }, error: /not valid JSON/ },
  huge: { served: { bytes: Buffer.alloc(5 * 1024 * 1024, 32), mediaType: OCI }, error: /exceeds 4194304 bytes/ },
  unknown: { served: { bytes: Buffer.from('{"schemaVersion":2}'), mediaType: 'application/vnd.example.unknown+json' }, error: /unsupported media type/ },
  schema1: {
    served: {
      bytes: Buffer.from('{"schemaVersion":1,"name":"x","tag":"bad","fsLayers":[]}'),
      mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
    },
    error: /schema 1.*unsupported/,
  },
  liar: { served: { bytes: image(), mediaType: OCI, digest: sha('something else') }, error: /claims .* but the bytes hash to/ },
  badblob: { served: { bytes: image(sha(badLayer)), mediaType: OCI }, error: /DIGEST_INVALID|hashed to/ },
};

let fake: Server;
let fakeUrl: string;
let secondary: TestRegistry;

beforeAll(async () => {
  const good: Served = { bytes: image(), mediaType: OCI };
  fake = createServer((req, res) => {
    const match = /^\/v2\/hostile\/([a-z0-9]+)\/(tags\/list|manifests\/([^/]+)|blobs\/([^/]+))$/.exec((req.url ?? '').split('?')[0]!);
    if (req.url === '/v2/') return void res.writeHead(200).end('{}');
    if (!match || !cases[match[1]!]) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
    const served = cases[match[1]!]!.served;
    if (match[2] === 'tags/list') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tags: ['ok', 'bad'] }));
    if (match[3]) {
      const ref = match[3];
      const manifest = ref === 'ok' || ref === sha(good.bytes) ? good : ref === 'bad' || ref === (served.digest ?? sha(served.bytes)) ? served : undefined;
      if (!manifest) return void res.writeHead(404).end();
      res.writeHead(200, {
        'content-type': manifest.mediaType,
        'docker-content-digest': manifest.digest ?? sha(manifest.bytes),
        'content-length': manifest.bytes.length,
      });
      return void res.end(req.method === 'HEAD' ? undefined : manifest.bytes);
    }
    const digest = match[4];
    // The bad blob: bytes that do not hash to the digest asked for.
    const body = digest === sha(config) ? config : digest === sha(layer) ? layer : digest === sha(badLayer) ? layer : undefined;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  secondary = await startRegistry();
});
afterAll(async () => {
  await new Promise<void>((resolve) => fake?.close(() => resolve()));
  await secondary?.stop();
});

describe('a hostile or broken primary', () => {
  it.each(Object.entries(cases))('%s: the bad tag fails by name, the good tag is copied, nothing else is lost', async (name, { error }) => {
    const repo = `hostile/${name}`;
    const primary = new RegistryClient({ url: fakeUrl }, { retries: 0 });
    const target = new RegistryClient({ url: secondary.url });
    const report = await syncRepository(primary, target, validateRepositoryName(repo));
    await Promise.all([primary.close(), target.close()]);

    expect(report.status).toBe('failed');
    expect(report.done.copied).toEqual(['ok']);
    expect(report.failed.map((f) => f.tag)).toEqual(['bad']);
    expect(report.failed[0]!.error).toMatch(error);
    expect(Object.keys(await readTags(secondary.url, repo))).toEqual(['ok']);
  });

  it('the CLI exits 3 and names the failed tag', async () => {
    const result = await runGeoSync(['sync', 'hostile/schema1', '--primary', fakeUrl, '--secondary', secondary.url, '--retries', '0']);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/failed +bad: .*schema 1/);
  });
});
