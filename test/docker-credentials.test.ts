import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGeoSync } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { basicAuth, pushImage, readTags } from './support/seed.js';
import { dockerCredentialsFor, type CredentialsProvider } from '../shared/engine/index.js';

/**
 * Credentials as `docker login`, `podman login` and credential helpers leave them: a secondary with
 * basic auth, reached with no GEO_SYNC_SECONDARY_USERNAME, through docker's config.json, the
 * containers auth.json, and Debian's docker-credential-pass over a throwaway gpg key.
 */
describe('credentials from docker and podman credential files and helpers', () => {
  const password = 'd0cker-L0gin-Secret';
  let primary: TestRegistry;
  let secondary: TestRegistry;
  let home: string;
  /** HOME, GNUPGHOME and PASSWORD_STORE_DIR for docker-credential-pass; PATH with the failing helper too. */
  let helperEnv: Record<string, string>;

  beforeAll(async () => {
    [primary, secondary] = await Promise.all([startRegistry(), startRegistry({ htpasswd: { username: 'writer', password } })]);
    home = mkdtempSync(join(tmpdir(), 'geo-sync-docker-creds-'));
    const gnupg = join(home, 'gnupg');
    const bin = join(home, 'bin');
    mkdirSync(gnupg, { mode: 0o700 });
    mkdirSync(bin);
    writeFileSync(join(bin, 'docker-credential-broken'), '#!/bin/sh\necho "vault sealed" >&2\nexit 2\n');
    chmodSync(join(bin, 'docker-credential-broken'), 0o755);
    helperEnv = { HOME: home, GNUPGHOME: gnupg, PASSWORD_STORE_DIR: join(home, 'store'), PATH: `${bin}:${process.env.PATH ?? ''}` };
    const run = (command: string, args: string[], input?: string) => execFileSync(command, args, { env: helperEnv, input, encoding: 'utf8', stdio: 'pipe' });
    run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'geo-sync test <test@example.invalid>', 'default', 'default', 'never']);
    const keyId = /^fpr:+([0-9A-F]+):/m.exec(run('gpg', ['--batch', '--with-colons', '--list-secret-keys']))![1]!;
    run('pass', ['init', keyId]);
    run('docker-credential-pass', ['store'], JSON.stringify({ ServerURL: secondary.host, Username: 'writer', Secret: password }));
    await pushImage(primary.url, 'creds/app', 'v1');
  }, 120_000);
  afterAll(async () => {
    await Promise.all([primary?.stop(), secondary?.stop()]);
    if (home) rmSync(home, { recursive: true, force: true });
  });

  /** A docker config directory holding this config.json; its path for DOCKER_CONFIG. */
  function dockerConfig(config: object): string {
    const dir = mkdtempSync(join(home, 'docker-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }
  const auth = (user: string, secret: string) => Buffer.from(`${user}:${secret}`).toString('base64');

  async function syncWith(env: Record<string, string>, repo = 'creds/app') {
    const result = await runGeoSync(['sync', repo, '--json'], {
      GEO_SYNC_PRIMARY_URL: primary.url,
      GEO_SYNC_SECONDARY_URL: secondary.url,
      ...helperEnv,
      ...env,
    });
    for (const text of [result.stdout, result.stderr]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(auth('writer', password));
    }
    return result;
  }

  it('without any credentials the secondary refuses (exit 3)', async () => {
    const result = await syncWith({ DOCKER_CONFIG: dockerConfig({}) });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/authentication refused|asks for credentials/);
  });

  it('reads an auths entry with "auth" (base64 user:password), as docker login writes it', async () => {
    const result = await syncWith({ DOCKER_CONFIG: dockerConfig({ auths: { [secondary.host]: { auth: auth('writer', password) } } }) });
    expect(result.code).toBe(0);
    expect(Object.keys(await readTags(secondary.url, 'creds/app', basicAuth('writer', password)))).toEqual(['v1']);
  });

  it('reads an auths entry with username and password, keyed by a URL with scheme and path', async () => {
    const result = await syncWith({ DOCKER_CONFIG: dockerConfig({ auths: { [`http://${secondary.host}/v2/`]: { username: 'writer', password } } }) });
    expect(result.code).toBe(0);
  });

  it('asks docker-credential-pass named in credHelpers for this host', async () => {
    const config = { auths: { [secondary.host]: {} }, credHelpers: { [secondary.host]: 'pass' } };
    const result = await syncWith({ DOCKER_CONFIG: dockerConfig(config) });
    expect(result.code).toBe(0);
  });

  it('asks the credsStore helper (pass) for every host; a host it does not know stays anonymous', async () => {
    const result = await syncWith({ DOCKER_CONFIG: dockerConfig({ credsStore: 'pass' }) });
    expect(result.code).toBe(0);
  });

  it('reads $REGISTRY_AUTH_FILE before docker config.json', async () => {
    writeFileSync(join(home, 'auth.json'), JSON.stringify({ auths: { [secondary.host]: { auth: auth('writer', password) } } }));
    const wrong = dockerConfig({ auths: { [secondary.host]: { auth: auth('writer', 'stale-password') } } });
    const result = await syncWith({ REGISTRY_AUTH_FILE: join(home, 'auth.json'), DOCKER_CONFIG: wrong });
    expect(result.code).toBe(0);
  });

  it('GEO_SYNC_* variables win over the files', async () => {
    const stale = dockerConfig({ auths: { [secondary.host]: { auth: auth('writer', 'stale-password') } } });
    const fresh = dockerConfig({ auths: { [secondary.host]: { auth: auth('writer', password) } } });
    expect((await syncWith({ DOCKER_CONFIG: stale, GEO_SYNC_SECONDARY_USERNAME: 'writer', GEO_SYNC_SECONDARY_PASSWORD: password })).code).toBe(0);
    const refused = await syncWith({ DOCKER_CONFIG: fresh, GEO_SYNC_SECONDARY_USERNAME: 'writer', GEO_SYNC_SECONDARY_PASSWORD: 'wrong-password' });
    expect(refused.code).toBe(3);
    expect(refused.stderr).not.toContain('wrong-password');
  });

  it('refused credentials from a file: exit 3, the hint names the file', async () => {
    const dir = dockerConfig({ auths: { [secondary.host]: { auth: auth('writer', 'stale-password') } } });
    const result = await syncWith({ DOCKER_CONFIG: dir });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`it refused the credentials in the "auths" entry for ${secondary.host} in ${join(dir, 'config.json')}`);
    expect(result.stderr).not.toContain('stale-password');
  });

  it('a failing helper is an error naming the helper and the registry (exit 3), never an anonymous run', async () => {
    const config = { auths: { [secondary.host]: { auth: auth('writer', password) } }, credHelpers: { [secondary.host]: 'broken' } };
    const result = await syncWith({ DOCKER_CONFIG: dockerConfig(config) });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`docker-credential-broken failed for ${secondary.host}: exit 2: vault sealed`);
  });
});

describe('docker credential files, matched as docker matches hosts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'geo-sync-docker-hosts-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const auths = (keys: Record<string, string>) => {
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ auths: Object.fromEntries(Object.entries(keys).map(([key, user]) => [key, { username: user, password: 'p' }])) }),
    );
    return { DOCKER_CONFIG: dir };
  };

  it("Docker Hub's hosts all use the key https://index.docker.io/v1/", () => {
    const env = auths({ 'https://index.docker.io/v1/': 'hub-user' });
    for (const host of ['docker.io', 'index.docker.io', 'registry-1.docker.io'])
      expect(dockerCredentialsFor(host, env)).toEqual({ username: 'hub-user', password: 'p' });
  });

  it('host and port must both match; a key may be a URL with scheme and path', () => {
    const env = auths({ 'registry.example.com:5000': 'with-port', 'https://other.example.com/v2/': 'url-key' });
    expect(dockerCredentialsFor('registry.example.com', env)).toBeUndefined();
    expect(dockerCredentialsFor('registry.example.com:5000', env)).toMatchObject({ username: 'with-port' });
    expect(dockerCredentialsFor('other.example.com', env)).toMatchObject({ username: 'url-key' });
  });

  it('a helper is asked once, and once more after its credentials are refused, never again', async () => {
    const bin = mkdtempSync(join(dir, 'bin-'));
    const counter = join(bin, 'count');
    writeFileSync(counter, '');
    writeFileSync(
      join(bin, 'docker-credential-counting'),
      `#!/bin/sh\necho x >> ${counter}\nn=$(wc -l < ${counter})\necho "{\\"ServerURL\\":\\"h\\",\\"Username\\":\\"u\\",\\"Secret\\":\\"s$n\\"}"\n`,
    );
    chmodSync(join(bin, 'docker-credential-counting'), 0o755);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ credHelpers: { 'registry.example.com': 'counting' } }));
    const provider = dockerCredentialsFor('registry.example.com', { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH ?? ''}` }) as CredentialsProvider;
    const first = await provider.get();
    expect(first.password).toBe('s1');
    provider.refused(first);
    const second = await provider.get();
    expect(second.password).toBe('s2');
    provider.refused(second);
    expect((await provider.get()).password).toBe('s2');
  });
});
