import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { runGeoSync } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage, readTags } from './support/seed.js';
import { startTokenIssuer, type TokenIssuer } from './support/token-issuer.js';
import { dockerCredentialsFor, type CredentialsProvider } from '../shared/engine/index.js';

/**
 * Docker's identity tokens (OAuth2 refresh tokens kept by a login in place of a password): an
 * `auths` entry's `identitytoken`, and a credential helper answering Username `<token>`. The
 * secondary is a real registry behind the token issuer, which takes the refresh-token grant for
 * the tokens it knows (test/support/token-issuer.ts, written from distribution's oauth.md).
 */
describe('identity tokens from docker credential files and helpers', () => {
  const identityToken = 'idt-7f3c9a-Refresh-Secret-0b1d';
  const wrongToken = 'idt-revoked-Refresh-Secret-99ee';
  const writerPassword = 'Wr1ter-T0ken-Secret';
  let issuer: TokenIssuer;
  let primary: TestRegistry;
  let secondary: TestRegistry;
  let basicSecondary: TestRegistry;
  let home: string;
  let bin: string;

  beforeAll(async () => {
    issuer = await startTokenIssuer({ writer: writerPassword }, { refreshTokens: { [identityToken]: 'writer' } });
    const token = { realm: issuer.realm, service: issuer.service, issuer: issuer.issuer, rootCertBundle: issuer.certFile };
    [primary, secondary, basicSecondary] = await Promise.all([
      startRegistry(),
      startRegistry({ token }),
      startRegistry({ htpasswd: { username: 'writer', password: writerPassword } }),
    ]);
    home = mkdtempSync(join(tmpdir(), 'geo-sync-identity-token-'));
    bin = mkdtempSync(join(home, 'bin-'));
    for (const repo of ['idt/file', 'idt/helper', 'idt/wrong', 'idt/wrong-helper', 'idt/basic']) await pushImage(primary.url, repo, 'v1', { seed: repo });
  }, 120_000);
  afterAll(async () => {
    await Promise.all([primary?.stop(), secondary?.stop(), basicSecondary?.stop()]);
    await issuer?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  /** A docker config directory holding this config.json; its path for DOCKER_CONFIG. */
  function dockerConfig(config: object): string {
    const dir = mkdtempSync(join(home, 'docker-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }

  /** docker-credential-<name>: answers Username `<token>` with this secret for `host`, "credentials not found" for any other. */
  function tokenHelper(name: string, host: string, secret: string): void {
    const path = join(bin, `docker-credential-${name}`);
    const answer = JSON.stringify({ ServerURL: host, Username: '<token>', Secret: secret });
    writeFileSync(
      path,
      `#!/bin/sh\nserver=$(cat)\n[ "$server" = "${host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '${answer}'\n`,
    );
    chmodSync(path, 0o755);
  }

  /** An `auths` entry as a login that got an identity token writes it: `auth` of the user with no password, beside the token. */
  const identityEntry = (token: string) => ({ auth: Buffer.from('writer:').toString('base64'), identitytoken: token });

  async function syncWith(repo: string, dockerDir: string, secondaryUrl = secondary.url) {
    const result = await runGeoSync(['sync', repo, '--json'], {
      GEO_SYNC_PRIMARY_URL: primary.url,
      GEO_SYNC_SECONDARY_URL: secondaryUrl,
      GEO_SYNC_LOG_LEVEL: 'debug',
      HOME: home,
      DOCKER_CONFIG: dockerDir,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
    });
    for (const text of [result.stdout, result.stderr]) {
      expect(text).not.toContain(identityToken);
      expect(text).not.toContain(wrongToken);
    }
    return result;
  }

  /** What the secondary holds, read with a pull token the issuer gives the writer's password (not our client). */
  async function secondaryTags(repo: string): Promise<Record<string, string>> {
    const url = `${issuer.realm}?service=${issuer.service}&scope=repository:${repo}:pull`;
    const response = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`writer:${writerPassword}`).toString('base64')}` } });
    return readTags(secondary.url, repo, `Bearer ${((await response.json()) as { token: string }).token}`);
  }

  it('an auths entry with identitytoken: the refresh-token grant (not its "auth") signs in, and the secondary holds the tag', async () => {
    const start = issuer.requests.length;
    const result = await syncWith('idt/file', dockerConfig({ auths: { [secondary.host]: identityEntry(identityToken) } }));
    expect(result.stderr).not.toMatch(/"level":"error"/);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'synced', done: { copied: ['v1'] } });
    // Every token request of the run was the OAuth2 grant: the entry's "auth" was never sent.
    const asked = issuer.requests.slice(start);
    expect(asked.some((r) => r.grant === 'refresh_token' && r.user === 'writer' && r.scopes.includes('repository:idt/file:pull,push'))).toBe(true);
    expect(asked.every((r) => r.grant === 'refresh_token' && r.clientId === 'geo-registry-sync')).toBe(true);
    expect(await secondaryTags('idt/file')).toEqual(await readTags(primary.url, 'idt/file'));
  });

  it('a credential helper answering Username <token>: its Secret is the identity token', async () => {
    tokenHelper('idt', secondary.host, identityToken);
    const result = await syncWith('idt/helper', dockerConfig({ credHelpers: { [secondary.host]: 'idt' } }));
    expect(result.code).toBe(0);
    expect(await secondaryTags('idt/helper')).toEqual(await readTags(primary.url, 'idt/helper'));
  });

  it('a refused identity token (400 invalid_grant): exit 3 naming the registry and the file, never an anonymous run', async () => {
    const dir = dockerConfig({ auths: { [secondary.host]: identityEntry(wrongToken) } });
    const result = await syncWith('idt/wrong', dir);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(
      `refused the identity token for ${secondary.host} from the "auths" entry for ${secondary.host} in ${join(dir, 'config.json')} (HTTP 400 invalid_grant)`,
    );
    expect(await secondaryTags('idt/wrong')).toEqual({});
  });

  it("a helper's refused identity token: exit 3 naming the helper and where it is configured", async () => {
    tokenHelper('stale', secondary.host, wrongToken);
    const dir = dockerConfig({ credHelpers: { [secondary.host]: 'stale' } });
    const result = await syncWith('idt/wrong-helper', dir);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`from docker-credential-stale (credHelpers in ${join(dir, 'config.json')}) (HTTP 400 invalid_grant)`);
    expect(await secondaryTags('idt/wrong-helper')).toEqual({});
  });

  it('an identity token for a registry that asks for Basic: exit 3 naming the registry and the file', async () => {
    const dir = dockerConfig({ auths: { [basicSecondary.host]: identityEntry(identityToken) } });
    const result = await syncWith('idt/basic', dir, basicSecondary.url);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`registry ${basicSecondary.host} asks for Basic authentication`);
    expect(result.stderr).toContain(`from the "auths" entry for ${basicSecondary.host} in ${join(dir, 'config.json')} are an identity token`);
    expect(await readTags(basicSecondary.url, 'idt/basic', `Basic ${Buffer.from(`writer:${writerPassword}`).toString('base64')}`)).toEqual({});
  });

  it('an identity token for a registry whose token service takes no OAuth2 (POST answered 405): exit 3 naming the service and the file', async () => {
    const getOnly = await startTokenIssuer({ writer: writerPassword }, { oauth: false, refreshTokens: { [identityToken]: 'writer' } });
    const registry = await startRegistry({
      token: { realm: getOnly.realm, service: getOnly.service, issuer: getOnly.issuer, rootCertBundle: getOnly.certFile },
    });
    try {
      const dir = dockerConfig({ auths: { [registry.host]: identityEntry(identityToken) } });
      const result = await syncWith('idt/file', dir, registry.url);
      expect(result.code).toBe(3);
      expect(result.stderr).toContain(`token service ${new URL(getOnly.realm).host} of ${registry.host} takes no OAuth2 refresh tokens (POST answered`);
      expect(result.stderr).toContain(`cannot be used: log in with a user name and password`);
      expect(getOnly.requests).toEqual([]);
    } finally {
      await registry.stop();
      await getOnly.stop();
    }
  });

  it('a helper that answered a password, asked again after a 401, and then answers an identity token: an error naming the helper', async () => {
    const counter = join(bin, 'switching-count');
    writeFileSync(counter, '');
    const path = join(bin, 'docker-credential-switching');
    const password = JSON.stringify({ ServerURL: 'h', Username: 'writer', Secret: 'pw' });
    const token = JSON.stringify({ ServerURL: 'h', Username: '<token>', Secret: identityToken });
    writeFileSync(
      path,
      `#!/bin/sh\ncat >/dev/null\necho x >> ${counter}\nif [ "$(wc -l < ${counter})" -eq 1 ]; then echo '${password}'; else echo '${token}'; fi\n`,
    );
    chmodSync(path, 0o755);
    const env = { DOCKER_CONFIG: dockerConfig({ credHelpers: { 'registry.example.com': 'switching' } }), PATH: `${bin}:${process.env.PATH ?? ''}` };
    const provider = dockerCredentialsFor('registry.example.com', env) as CredentialsProvider;
    const first = await provider.get();
    expect(first).toEqual({ username: 'writer', password: 'pw' });
    provider.refused(first);
    const renewal = provider.get().then(
      () => 'taken',
      (error: Error) => error.message,
    );
    expect(await renewal).toBe(
      'credential helper docker-credential-switching failed for registry.example.com: asked again, it answered an identity token for a user name and password',
    );
  });

  it('the identity token read from a file shows only its source when serialized or inspected', () => {
    const credentials = dockerCredentialsFor(secondary.host, { DOCKER_CONFIG: dockerConfig({ auths: { [secondary.host]: identityEntry(identityToken) } }) });
    expect(JSON.stringify(credentials)).toContain('auths');
    expect(JSON.stringify(credentials)).not.toContain(identityToken);
    expect(inspect(credentials, { depth: 5, showHidden: true })).not.toContain(identityToken);
  });
});
