import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, syncRepository, validateRepositoryName } from '../shared/engine/index.js';
import { runGeoSync } from './support/cli.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { basicAuth, pushImage, readTags } from './support/seed.js';

describe('TLS verification', () => {
  let dir: string;
  let tlsRegistry: TestRegistry;
  let plain: TestRegistry;
  let caFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tls-'));
    caFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        caFile,
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-days',
        '2',
      ],
      { stdio: 'ignore' },
    );
    [tlsRegistry, plain] = await Promise.all([startRegistry({ tls: { certificate: caFile, key: keyFile } }), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([tlsRegistry?.stop(), plain?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const httpsUrl = () => tlsRegistry.url;

  it('refuses a registry with a self-signed certificate by default (exit 3)', async () => {
    await pushImage(plain.url, 'tls/app', 'v1');
    const result = await runGeoSync(['sync', 'tls/app', '--primary', plain.url, '--secondary', httpsUrl(), '--retries', '0']);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/certificate/i);
  });

  it('accepts it with --ca-file, and syncs over TLS', async () => {
    const result = await runGeoSync(['sync', 'tls/app', '--primary', plain.url, '--secondary', httpsUrl(), '--ca-file', caFile]);
    expect(result.code).toBe(0);
    const client = new RegistryClient({ url: httpsUrl(), caFile });
    expect(await client.listTags('tls/app')).toEqual(['v1']);
    await client.close();
  });

  it('defaults to https:// when the URL names no scheme', async () => {
    const result = await runGeoSync(['verify', 'tls/app', '--primary', plain.url, '--secondary', `127.0.0.1:${tlsRegistry.port}`, '--ca-file', caFile]);
    expect(result.code).toBe(0);
  });
});

describe('credentials stay on the registry host', () => {
  let registry: TestRegistry;
  let target: TestRegistry;
  let proxy: FaultProxy;
  let storage: Server;
  const seenByStorage: (string | undefined)[] = [];

  beforeAll(async () => {
    [registry, target] = await Promise.all([startRegistry({ htpasswd: { username: 'u', password: 'redirect-Secret' } }), startRegistry()]);
    // "Object storage" on another origin: serves blobs by fetching them from the registry itself.
    storage = createServer(async (req, res) => {
      seenByStorage.push(req.headers.authorization);
      const upstream = await fetch(`${registry.url}${req.url}`, { headers: { authorization: basicAuth('u', 'redirect-Secret') } });
      res.writeHead(upstream.status, { 'content-length': upstream.headers.get('content-length') ?? '0' });
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;
    proxy = await startFaultProxy(registry.url, ({ method, path }) =>
      method === 'GET' && /\/blobs\/sha256:/.test(path) ? { kind: 'status', status: 307, headers: { location: `${storageUrl}${path}` } } : undefined,
    );
  });
  afterAll(async () => {
    await Promise.all([registry?.stop(), target?.stop(), proxy?.stop()]);
    await new Promise<void>((resolve) => storage?.close(() => resolve()));
  });

  it('follows blob redirects to another host without forwarding Authorization', async () => {
    await pushImage(registry.url, 'redirect/app', 'v1', { auth: basicAuth('u', 'redirect-Secret') });
    const primary = new RegistryClient({ url: proxy.url, username: 'u', password: 'redirect-Secret' });
    const secondary = new RegistryClient({ url: target.url });
    const report = await syncRepository(primary, secondary, validateRepositoryName('redirect/app'));
    await Promise.all([primary.close(), secondary.close()]);

    expect(report.status).toBe('synced');
    expect(seenByStorage.length).toBe(2);
    expect(seenByStorage.every((header) => header === undefined)).toBe(true);
    expect(proxy.log.filter((r) => r.path.includes('/manifests/')).every((r) => r.authorization?.startsWith('Basic '))).toBe(true);
    expect(Object.keys(await readTags(target.url, 'redirect/app'))).toEqual(['v1']);
  });
});
