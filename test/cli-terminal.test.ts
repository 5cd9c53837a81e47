// The CLI as a person meets it at a terminal, and as a script meets it on a pipe: one line that
// names the registry, its scheme and what to try; logs readable on a terminal, JSON on a pipe.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGeoSync, type CliResult } from './support/cli.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { pushImage } from './support/seed.js';

const CLI = fileURLToPath(new URL('../bin/geo-sync.mjs', import.meta.url));
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the real binary with its stderr on a pseudo-terminal (util-linux `script`), stdout thrown
 * away, so that what comes back is what a person sees on stderr. `-e` passes the exit code on.
 */
function runOnTerminal(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const command = `${[process.execPath, CLI, ...args].map(quote).join(' ')} >/dev/null`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: '', stderr: stderr.replace(/\r\n/g, '\n') }));
  });
}

const channels = { terminal: runOnTerminal, pipe: runGeoSync } as const;

/** A loopback port nothing listens on: bound, then let go. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const lines = (text: string) => text.split('\n').filter((line) => line.trim() !== '');

describe('the error line, on a terminal and on a pipe', () => {
  const password = 'Secondary-S3cret-pass';
  let dir: string;
  let plain: TestRegistry;
  let tls: TestRegistry;
  let authenticated: TestRegistry;
  let refused: [number, number];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli-terminal-'));
    const certificate = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    const subject = ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, ...subject, '-days', '2'], {
      stdio: 'ignore',
    });
    [plain, tls, authenticated] = await Promise.all([
      startRegistry(),
      startRegistry({ tls: { certificate, key } }),
      startRegistry({ htpasswd: { username: 'writer', password } }),
    ]);
    await pushImage(plain.url, 'term/app', 'v1');
    refused = [await refusedPort(), await refusedPort()];
  });
  afterAll(async () => {
    await Promise.all([plain?.stop(), tls?.stop(), authenticated?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    {
      name: 'a refused connection',
      args: () => ['verify', 'term/app', '--primary', `127.0.0.1:${refused[0]}`, '--secondary', `127.0.0.1:${refused[1]}`],
      env: () => ({}),
      line: () =>
        new RegExp(
          `^geo-sync: primary: GET https://127\\.0\\.0\\.1:${refused[0]}/\\S+ failed: connect ECONNREFUSED .*Hint: is it running, and on that port\\? A registry that serves plain HTTP needs http://127\\.0\\.0\\.1:${refused[0]} in --primary \\(https:// is the default\\)\\.$`,
        ),
    },
    {
      name: 'a certificate of an unknown authority',
      args: () => ['verify', 'term/app', '--primary', plain.url, '--secondary', tls.host],
      env: () => ({}),
      line: () =>
        new RegExp(
          `^geo-sync: secondary: GET https://${tls.host.replace(/\./g, '\\.')}/v2/term/app/tags/list failed: self-signed certificate\\. Hint: .* pass that CA with --ca-file <pem> \\(or GEO_SYNC_SECONDARY_CA_FILE\\)$`,
        ),
    },
    {
      name: 'a 401',
      args: () => ['verify', 'term/app', '--primary', plain.url, '--secondary', authenticated.url],
      env: () => ({ GEO_SYNC_SECONDARY_USERNAME: 'writer', GEO_SYNC_SECONDARY_PASSWORD: 'not-the-password' }),
      line: () =>
        new RegExp(
          `^geo-sync: secondary: GET http://${authenticated.host.replace(/\./g, '\\.')}/v2/term/app/tags/list: authentication refused.*\\. Hint: it refused the credentials in GEO_SYNC_SECONDARY_USERNAME and GEO_SYNC_SECONDARY_PASSWORD$`,
        ),
    },
    {
      name: 'a repository the primary lacks',
      args: () => ['verify', 'term/ap', '--primary', plain.url, '--secondary', plain.url],
      env: () => ({}),
      line: () =>
        new RegExp(
          `^geo-sync: primary http://${plain.host.replace(/\./g, '\\.')}: repository term/ap does not exist on the primary .*\\. Hint: give the repository's name as the primary lists it \\(GET http://${plain.host.replace(/\./g, '\\.')}/v2/_catalog lists them\\)$`,
        ),
    },
  ];

  describe.each(Object.keys(channels) as (keyof typeof channels)[])('on a %s', (channel) => {
    it.each(cases)('$name: one line naming the registry, its scheme and what to try; exit 3', async ({ args, env, line }) => {
      const result = await channels[channel](args(), env());
      expect(result.code, result.stderr).toBe(3);
      expect(lines(result.stderr)).toEqual([expect.stringMatching(line())]);
      expect(result.stderr).not.toContain('not-the-password');
    });
  });

  it('logs readable lines on a terminal, JSON on a pipe, and what --log-format says on either', async () => {
    const args = ['verify', 'term/app', '--primary', plain.url, '--secondary', plain.url, '--log-level', 'info'];
    const onTerminal = await runOnTerminal(args);
    const onPipe = await runGeoSync(args);
    const asked = await runOnTerminal([...args, '--log-format', 'json']);
    const askedByEnv = await runGeoSync(args, { GEO_SYNC_LOG_FORMAT: 'text' });

    for (const result of [onTerminal, onPipe, asked, askedByEnv]) expect(result.code, result.stderr).toBe(0);
    const readable = new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} info  registry traffic  registry=${plain.host.replace(/\./g, '\\.')}  requests=\\d+ `);
    expect(lines(onTerminal.stderr)).toEqual([expect.stringMatching(readable), expect.stringMatching(readable)]);
    expect(lines(askedByEnv.stderr)).toEqual([expect.stringMatching(readable), expect.stringMatching(readable)]);
    for (const result of [onPipe, asked]) {
      expect(lines(result.stderr).map((l) => JSON.parse(l) as unknown)).toEqual([
        expect.objectContaining({ level: 'info', message: 'registry traffic', registry: plain.host }),
        expect.objectContaining({ level: 'info', message: 'registry traffic', registry: plain.host }),
      ]);
    }
  });

  it('rejects an unknown --log-format as a usage error (exit 2)', async () => {
    const result = await runGeoSync(['verify', 'term/app', '--primary', plain.url, '--secondary', plain.url, '--log-format', 'xml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--log-format must be json or text/);
  });

  it('says no credentials were given when a registry asks for them', async () => {
    const result = await runGeoSync(['verify', 'term/app', '--primary', plain.url, '--secondary', authenticated.url]);
    expect(result.code).toBe(3);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(/Hint: it asks for credentials and none were given: set GEO_SYNC_SECONDARY_USERNAME and GEO_SYNC_SECONDARY_PASSWORD$/),
    ]);
  });

  it('names the entry of GEO_SYNC_SECONDARIES whose registry failed', async () => {
    const env = { GEO_SYNC_PRIMARY_URL: plain.url, GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'eu', url: tls.host }]) };
    const result = await runGeoSync(['verify', 'term/app'], env);
    expect(result.code).toBe(3);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(/^geo-sync: secondary "eu": .*--ca-file <pem> \(or "caFile" in the "eu" entry of GEO_SYNC_SECONDARIES\)$/),
    ]);
  });
});

describe('a refused port fails within the plain API retry budget alone', () => {
  it('the GitLab probe is sent once per registry, the tag list carries the retries', async () => {
    const [primary, secondary] = [await refusedPort(), await refusedPort()];
    const result = await runGeoSync([
      'verify',
      'term/app',
      '--primary',
      `127.0.0.1:${primary}`,
      '--secondary',
      `127.0.0.1:${secondary}`,
      '--no-referrers',
      '--retries',
      '4',
      '--log-level',
      'debug',
      '--log-format',
      'json',
    ]);
    expect(result.code).toBe(3);
    const logged = lines(result.stderr)
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { message: string; registry?: string; path?: string; requests?: number; retries?: number });
    const retried = (path: string) => logged.filter((l) => l.message === 'retrying request' && l.path === path);
    expect(retried('/gitlab/v1/')).toEqual([]);
    const traffic = logged.filter((l) => l.message === 'registry traffic');
    expect(traffic.map((l) => l.registry).sort()).toEqual([`127.0.0.1:${primary}`, `127.0.0.1:${secondary}`].sort());
    for (const registry of traffic) {
      // One probe, then the tag list's first try and its four retries: the one budget.
      expect(registry.retries).toBeLessThanOrEqual(4);
      expect(registry.requests).toBeLessThanOrEqual(1 + 1 + 4);
    }
    expect(retried('/v2/term/app/tags/list').length).toBeGreaterThan(0);
    // Retries are debug: at the default level the run says one thing, the error.
    const quiet = await runGeoSync(['verify', 'term/app', '--primary', `127.0.0.1:${primary}`, '--secondary', `127.0.0.1:${secondary}`, '--no-referrers']);
    expect(lines(quiet.stderr)).toHaveLength(1);
  });
});
