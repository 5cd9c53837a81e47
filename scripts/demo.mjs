#!/usr/bin/env node
// `npm run demo`: a first run in a few seconds. Starts two local docker-registry processes (a primary
// and a secondary) with temporary storage, builds on them the case of the report this project
// answers (a secondary that a plain "copy what is missing" sync leaves wrong), then runs the real
// CLI: `geo-sync verify` names each difference, `geo-sync sync` repairs them, `geo-sync verify`
// agrees. Everything it started is stopped and its temporary directory removed, also on an error,
// Ctrl-C or SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRegistryBinary, killAllNow, startRegistry, stopAll } from './demo/registry.mjs';
import { pushImage, pushMultiArch } from './demo/seed.mjs';

const CLI = fileURLToPath(new URL('../bin/geo-sync.mjs', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../dist/cli.mjs', import.meta.url));
const REPOSITORY = 'demo/app';
const started = Date.now();

const running = { cli: undefined, dir: undefined };
let cleaning;
let interrupted = false;

/** Stops what is running and removes the temporary directory; safe to call more than once. */
function cleanup() {
  cleaning ??= (async () => {
    // The CLI first: it must not write into the directory once that is removed.
    if (running.cli) {
      running.cli.child.kill('SIGTERM');
      await running.cli.closed;
    }
    await stopAll();
    if (running.dir) rmSync(running.dir, { recursive: true, force: true });
  })();
  return cleaning;
}

// Ctrl-C, a terminal closed, a kill: clean up, then exit as killed by that signal would.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    interrupted = true;
    process.stderr.write(`\ndemo: ${signal}: stopping the registries and removing ${running.dir ?? 'nothing'}\n`);
    void cleanup().finally(() => process.exit(128 + constants.signals[signal]));
  });
}
// Last resort if the process ends some other way: nothing may outlive it.
process.once('exit', () => {
  killAllNow();
  running.cli?.child.kill('SIGKILL');
  if (running.dir) rmSync(running.dir, { recursive: true, force: true });
});

try {
  await main();
  await cleanup();
  say(`\nStopped both registries and removed ${running.dir}. Done in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
} catch (error) {
  // After a signal, what failed is only the work cut short.
  if (!interrupted) process.stderr.write(`\ndemo failed: ${error.message}\n`);
  await cleanup();
  process.exitCode = 1;
}

async function main() {
  const binary = findRegistryBinary();
  if (!binary) {
    throw new Error('docker-registry not found (on PATH, or at $DOCKER_REGISTRY_BIN): install it with: apt-get install -y docker-registry');
  }
  if (!existsSync(BUNDLE)) throw new Error('dist/cli.mjs is missing: run `npm ci` (or `npm run build`) first');

  running.dir = mkdtempSync(join(tmpdir(), 'geo-sync-demo-'));
  say('geo-sync demo: two local registries, the case of the original report, then a sync.\n');
  say(`1. Two docker-registry processes on loopback, storage under ${running.dir} (deletes enabled)`);
  const [primary, secondary] = await Promise.all(['primary', 'secondary'].map((name) => startRegistry(binary, join(running.dir, name))));
  say(`   primary    ${primary.url}  (pid ${primary.pid})`);
  say(`   secondary  ${secondary.url}  (pid ${secondary.pid})`);

  say(`\n2. The reported case, in repository ${REPOSITORY}`);
  // The primary: what every secondary must hold, tag for tag, digest for digest.
  await pushImage(primary.url, REPOSITORY, 'v1.0', 'app 1.0');
  await pushImage(primary.url, REPOSITORY, 'v1.1', 'app 1.1');
  await pushImage(primary.url, REPOSITORY, 'v2.0', 'app 2.0');
  await pushImage(primary.url, REPOSITORY, 'latest', 'app 2.0');
  await pushMultiArch(primary.url, REPOSITORY, 'multi', 'app multi-arch');
  // The secondary, as replication left it while it was broken.
  await pushImage(secondary.url, REPOSITORY, 'v1.0', 'app 1.0');
  await pushImage(secondary.url, REPOSITORY, 'v1.1', 'app 1.1, rebuilt');
  await pushImage(secondary.url, REPOSITORY, 'stable', 'app 1.0');
  await pushImage(secondary.url, REPOSITORY, 'debug', 'app debug build');
  say('   primary    v1.0, v1.1, v2.0, latest (the same image as v2.0),');
  say('              multi (a multi-arch index: linux/amd64, linux/arm64)');
  say('   secondary  as a broken replication left it:');
  say('              v1.0                  the same image as on the primary');
  say('              v1.1                  re-pushed to another image: the tag is at another digest');
  say('              stable                an extra tag, an alias of v1.0 (the same digest)');
  say('              debug                 an extra tag, pushed to the secondary only');
  say('              v2.0, latest, multi   missing: they never arrived');

  const env = { GEO_SYNC_PRIMARY_URL: primary.url, GEO_SYNC_SECONDARY_URL: secondary.url };
  say('\n   The commands below run the real CLI (bin/geo-sync.mjs) with');
  say(`   GEO_SYNC_PRIMARY_URL=${primary.url} GEO_SYNC_SECONDARY_URL=${secondary.url}`);

  say('\n3. Verify: compare the (tag, digest) checksums of both sides and name every difference');
  await geoSync(['verify', REPOSITORY], env, 1, 'the checksums differ, and every difference is named');

  say('\n4. Sync: copy the missing tags (multi with its two images), repair v1.1, remove debug and stable;');
  say('   stable goes without deleting its digest, which would untag v1.0 as well');
  await geoSync(['sync', REPOSITORY], env, 0, 'every tag copied, repaired or removed as planned');

  say('\n5. Verify again');
  await geoSync(['verify', REPOSITORY], env, 0, 'the checksums are equal; v1.0 kept its tag when its alias stable was removed');

  // ---- Step 6, the event path: to come ------------------------------------------------------------
  // A tag pushed to the primary reaching the secondary through `geo-sync listen`. That command does
  // not exist yet; once it does, start it here, push a tag to the primary and show it arrive.
}

/** Runs the CLI as a user would, prints its output indented, and checks its exit code. */
async function geoSync(args, env, expectedCode, meaning) {
  if (interrupted) throw new Error('interrupted');
  say(`   $ geo-sync ${args.join(' ')}`);
  // Only the demo's registries: no GEO_SYNC_* setting of the caller's shell may point elsewhere.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('GEO_SYNC_')));
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...inherited, ...env, GEO_SYNC_STATE_DIR: join(running.dir, 'state') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const closed = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve(exitCode ?? signal));
  });
  running.cli = { child, closed: closed.catch(() => undefined) };
  const code = await closed;
  running.cli = undefined;
  if (interrupted) throw new Error('interrupted');
  for (const line of output.trimEnd().split('\n')) say(`   ${line}`);
  if (code !== expectedCode) throw new Error(`geo-sync ${args.join(' ')} exited with ${code}, expected ${expectedCode}`);
  say(`   exit ${code}: ${meaning}`);
}

function say(line) {
  process.stdout.write(`${line}\n`);
}
