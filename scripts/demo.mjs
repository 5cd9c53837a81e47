#!/usr/bin/env node
// `npm run demo`: a first run in a few seconds. Starts two local docker-registry processes (a primary
// and a secondary) with temporary storage, builds on them the case of the report this project
// answers (a secondary that a plain "copy what is missing" sync leaves wrong), then runs the real
// CLI: `geo-sync verify` names each difference, `geo-sync sync` repairs them, `geo-sync verify`
// agrees. Then the event path: `geo-sync listen` takes the primary's registry notifications, and a
// tag pushed to the primary reaches the secondary within moments. The case includes a signed image:
// its signature, kept in the referrers tag schema (registry 2.8 has no referrers API), is read back
// from the secondary. Last, when the registry that serves the OCI 1.1 referrers API has been built
// (by the tests), a second pair of those shows a signature reaching the secondary through the API.
// Everything it started (the registries, the listener) is stopped and its temporary directory
// removed, also on an error, Ctrl-C or SIGTERM.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRegistryBinary, freePort, killAllNow, startReferrersRegistry, startRegistry, stopAll, referrersRegistryBinary } from './demo/registry.mjs';
import { SIGNATURE, pushImage, pushMultiArch, pushSignature } from './demo/seed.mjs';

const CLI = fileURLToPath(new URL('../bin/geo-sync.mjs', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../dist/cli.mjs', import.meta.url));
const REPOSITORY = 'demo/app';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const started = Date.now();

const running = { cli: undefined, listener: undefined, dir: undefined, apiPair: false };
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
    if (running.listener) {
      running.listener.child.kill('SIGTERM');
      await running.listener.closed;
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
    process.stderr.write(`\ndemo: ${signal}: stopping the registries${running.listener ? ' and the listener' : ''} and removing ${running.dir ?? 'nothing'}\n`);
    void cleanup().finally(() => process.exit(128 + constants.signals[signal]));
  });
}
// Last resort if the process ends some other way: nothing may outlive it.
process.once('exit', () => {
  killAllNow();
  running.cli?.child.kill('SIGKILL');
  running.listener?.child.kill('SIGKILL');
  if (running.dir) rmSync(running.dir, { recursive: true, force: true });
});

try {
  await main();
  await cleanup();
  say(
    `\nStopped ${running.apiPair ? 'the four registries' : 'both registries'} and removed ${running.dir}. Done in ${((Date.now() - started) / 1000).toFixed(1)} s.`,
  );
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
  // The primary sends its notifications to the listener of step 6 from the start. Until that listens,
  // the registry keeps them in memory and retries: nothing it serves waits on them.
  const listenerPort = await freePort();
  const token = randomBytes(24).toString('hex');
  const notifications = {
    url: `http://127.0.0.1:${listenerPort}/events`,
    headers: { Authorization: [`Bearer ${token}`] },
    timeout: '2s',
    threshold: 3,
    backoff: '200ms',
  };
  const [primary, secondary] = await Promise.all([
    startRegistry(binary, join(running.dir, 'primary'), { notifications }),
    startRegistry(binary, join(running.dir, 'secondary')),
  ]);
  say(`   primary    ${primary.url}  (pid ${primary.pid}), notifications to ${notifications.url}`);
  say(`   secondary  ${secondary.url}  (pid ${secondary.pid})`);

  say(`\n2. The reported case, in repository ${REPOSITORY}`);
  // The primary: what every secondary must hold, tag for tag, digest for digest.
  await pushImage(primary.url, REPOSITORY, 'v1.0', 'app 1.0');
  await pushImage(primary.url, REPOSITORY, 'v1.1', 'app 1.1');
  await pushImage(primary.url, REPOSITORY, 'v2.0', 'app 2.0');
  await pushImage(primary.url, REPOSITORY, 'latest', 'app 2.0');
  await pushMultiArch(primary.url, REPOSITORY, 'multi', 'app multi-arch');
  const signed = await pushImage(primary.url, REPOSITORY, 'signed', 'app signed');
  const signature = await pushSignature(primary.url, REPOSITORY, signed, { tagSchema: true });
  // The secondary, as replication left it while it was broken.
  await pushImage(secondary.url, REPOSITORY, 'v1.0', 'app 1.0');
  await pushImage(secondary.url, REPOSITORY, 'v1.1', 'app 1.1, rebuilt');
  await pushImage(secondary.url, REPOSITORY, 'stable', 'app 1.0');
  await pushImage(secondary.url, REPOSITORY, 'debug', 'app debug build');
  say('   primary    v1.0, v1.1, v2.0, latest (the same image as v2.0),');
  say('              multi (a multi-arch index: linux/amd64, linux/arm64),');
  say('              signed (an image with a cosign signature, kept as registry 2.8 keeps one: the');
  say(`              signature untagged, listed by the index tagged ${abbreviate(signature.tag)})`);
  say('   secondary  as a broken replication left it:');
  say('              v1.0                  the same image as on the primary');
  say('              v1.1                  re-pushed to another image: the tag is at another digest');
  say('              stable                an extra tag, an alias of v1.0 (the same digest)');
  say('              debug                 an extra tag, pushed to the secondary only');
  say('              v2.0, latest, multi   missing: they never arrived');
  say('              signed, sha256-…      missing: the signed image and its signature');

  const env = { GEO_SYNC_PRIMARY_URL: primary.url, GEO_SYNC_SECONDARY_URL: secondary.url };
  say('\n   The commands below run the real CLI (bin/geo-sync.mjs) with');
  say(`   GEO_SYNC_PRIMARY_URL=${primary.url} GEO_SYNC_SECONDARY_URL=${secondary.url}`);

  say('\n3. Verify: compare the (tag, digest) checksums of both sides and name every difference');
  await geoSync(['verify', REPOSITORY], env, 1, 'the checksums differ, and every difference is named');

  say('\n4. Sync: copy the missing tags (multi with its two images, sha256-… with the signature), repair v1.1,');
  say('   remove debug and stable; stable goes without deleting its digest, which would untag v1.0 as well');
  await geoSync(['sync', REPOSITORY], env, 0, 'every tag copied, repaired or removed as planned');

  say('\n5. Verify again');
  await geoSync(['verify', REPOSITORY], env, 0, 'the checksums are equal; v1.0 kept its tag when its alias stable was removed');
  await showTagSchemaSignature(secondary, signed, signature);

  say("\n6. The event path: `geo-sync listen` takes the primary's notifications and replicates each push");
  await listen(primary, secondary, listenerPort, token);

  say('\n7. A registry that serves the OCI 1.1 referrers API: the signature pushed by digest with a subject, no tag');
  await referrersApi();
}

/**
 * Step 5's proof, read from the secondary over HTTP: its `sha256-<hex>` tag holds an index listing
 * the signature, and the signature's manifest there is the primary's, byte for byte.
 */
async function showTagSchemaSignature(secondary, signed, signature) {
  const index = await getManifest(secondary.url, REPOSITORY, signature.tag);
  const listed = JSON.parse(index?.toString('utf8') ?? '{}').manifests?.find((m) => m.digest === signature.digest);
  if (!listed) throw new Error(`${REPOSITORY}:${signature.tag} on the secondary does not list the signature ${signature.digest}`);
  const bytes = await getManifest(secondary.url, REPOSITORY, signature.digest);
  if (!bytes?.equals(signature.bytes)) throw new Error(`the signature ${signature.digest} on the secondary is not the primary's`);
  say(`   GET ${REPOSITORY}:${abbreviate(signature.tag)} on the secondary: an index listing ${abbreviate(listed.digest)} (${listed.artifactType})`);
  if (JSON.parse(bytes).subject.digest !== signed.digest) throw new Error('the signature on the secondary refers to another manifest');
  say(
    `   signature ${abbreviate(signature.digest)} of ${REPOSITORY}:signed reached the secondary (tag schema: ${abbreviate(signature.tag)}), the primary's bytes`,
  );
}

/**
 * Step 7: with the referrers-API registry built, a second pair of it: a signed image on the primary
 * (the signature by digest with a subject, which the API lists), verify, sync, and the secondary's
 * `GET /v2/<name>/referrers/<digest>`. Without it, one line on how to get it.
 */
async function referrersApi() {
  const { path: binary, missing } = await referrersRegistryBinary(process.env, () =>
    say('   building it from test/support/referrers-registry/main.go (the first time only; up to a minute or two)'),
  );
  if (!binary) {
    say(`   skipped, not built: ${missing}; scripts/install-system-packages.sh installs Go and go-containerregistry`);
    return;
  }
  running.apiPair = true;
  const [primary, secondary] = await Promise.all([startReferrersRegistry(binary), startReferrersRegistry(binary)]);
  say(`   two go-containerregistry registries (in memory, the API served), built by test/support/referrers-registry.ts`);
  say(`   primary    ${primary.url}  (pid ${primary.pid})`);
  say(`   secondary  ${secondary.url}  (pid ${secondary.pid})`);
  const signed = await pushImage(primary.url, REPOSITORY, 'signed', 'app signed');
  const signature = await pushSignature(primary.url, REPOSITORY, signed);
  say(`   primary    signed, and its signature ${abbreviate(signature.digest)}: no tag, the API lists it`);

  const env = { GEO_SYNC_PRIMARY_URL: primary.url, GEO_SYNC_SECONDARY_URL: secondary.url, GEO_SYNC_STATE_DIR: join(running.dir, 'state-api') };
  await geoSync(['verify', REPOSITORY], env, 1, 'signed and its signature are missing');
  await geoSync(['sync', REPOSITORY], env, 0, 'signed copied, then its signature');

  const path = `/v2/${REPOSITORY}/referrers/${signed.digest}`;
  const res = await fetch(`${secondary.url}${path}`, { headers: { Accept: 'application/vnd.oci.image.index.v1+json' } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${path} on the secondary -> ${res.status}: ${text.slice(0, 500)}`);
  const listed = (JSON.parse(text).manifests ?? []).map((m) => `${abbreviate(m.digest)} ${m.artifactType}`);
  say(`   GET ${abbreviate(path)} on the secondary: 200, ${listed.join('; ') || 'nothing listed'}`);
  const bytes = await getManifest(secondary.url, REPOSITORY, signature.digest);
  if (!listed.includes(`${abbreviate(signature.digest)} ${SIGNATURE.artifactType}`) || !bytes?.equals(signature.bytes)) {
    throw new Error(`the signature ${signature.digest} did not reach the secondary's referrers API byte-exact`);
  }
  say(`   signature ${abbreviate(signature.digest)} of ${REPOSITORY}:signed reached the secondary (referrers API), the primary's bytes`);
}

/** A manifest's bytes on a registry, by tag or digest; undefined when it has none. */
async function getManifest(url, repository, reference) {
  const res = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { headers: { Accept: ACCEPT }, signal: AbortSignal.timeout(5_000) });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET ${url}/v2/${repository}/manifests/${reference} -> ${res.status}`);
  return bytes;
}

/** `sha256:<12 hex>…` or `sha256-<12 hex>…`: a digest, or a referrers tag, short enough to read. */
function abbreviate(text) {
  return text.replace(/(sha256[:-][0-9a-f]{12})[0-9a-f]{52}/g, '$1…');
}

/**
 * Step 6: starts `geo-sync listen` on the port the primary notifies, pushes a new tag to the primary,
 * waits for it on the secondary, prints how long that took and the lag the listener logged, and stops
 * the listener with SIGTERM.
 */
async function listen(primary, secondary, port, token) {
  if (interrupted) throw new Error('interrupted');
  const args = ['listen', '--primary', primary.url, '--secondary', secondary.url, '--port', String(port), '--reconcile-every', '0', '--log-level', 'info'];
  say(`   $ GEO_SYNC_WEBHOOK_TOKEN=<random> geo-sync ${args.join(' ')}`);
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...inheritedEnv(), GEO_SYNC_WEBHOOK_TOKEN: token, GEO_SYNC_STATE_DIR: join(running.dir, 'listen-state') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const lines = [];
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => (output = (output + chunk).slice(-8192)));
  child.stderr.on('data', (chunk) => {
    output = (output + chunk).slice(-8192);
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part));
      } catch {
        // Not a log line.
      }
    }
  });
  let exit;
  const closed = new Promise((resolve) => {
    child.once('error', (error) => resolve((exit ??= `could not be started (${error.message})`)));
    child.once('close', (code, signal) => resolve((exit ??= code ?? signal)));
  });
  running.listener = { child, closed };
  say(`   listener   http://127.0.0.1:${port}  (pid ${child.pid})`);

  const failed = (what) => new Error(`geo-sync listen ${what}:\n${output.trimEnd()}`);
  await until(10_000, async () => {
    if (exit !== undefined) throw failed(`exited with ${exit}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }).catch((error) => {
    throw error.message === 'timeout' ? failed('did not answer GET /healthz with 200 within 10 s') : error;
  });
  say('   GET /healthz: 200');

  const tag = 'v2.1';
  const pushed = await pushImage(primary.url, REPOSITORY, tag, 'app 2.1');
  const pushedAt = Date.now();
  say(`   pushed ${REPOSITORY}:${tag} (a new image, ${pushed.digest.slice(0, 19)}) to the primary; polling the secondary every 50 ms`);
  await until(10_000, async () => {
    if (exit !== undefined) throw failed(`exited with ${exit}`);
    return (await secondaryDigest(secondary.url, REPOSITORY, tag)) === pushed.digest;
  }).catch((error) => {
    throw error.message === 'timeout' ? failed(`${tag} did not reach the secondary within 10 s`) : error;
  });
  const seconds = (Date.now() - pushedAt) / 1000;
  say(`   ${tag} reached the secondary at the primary's digest ${seconds.toFixed(2)} s after the push`);

  // The listener logs its line once the job is done: it may come a moment after the tag.
  const replicated = () => lines.find((line) => line.message === 'replicated' && line.repository === REPOSITORY && line.copied?.includes(tag));
  await until(2_000, async () => replicated() !== undefined).catch(() => undefined);
  const line = replicated();
  if (line) {
    say(`   the listener logged: replicated ${line.repository} copied ${line.copied.join(', ')}, lagSeconds ${line.lagSeconds}`);
  } else {
    say('   the listener logged no replicated line for it');
  }

  child.kill('SIGTERM');
  const code = await closed;
  running.listener = undefined;
  if (interrupted) throw new Error('interrupted');
  if (code !== 0) throw failed(`exited with ${code} on SIGTERM, expected 0`);
  say(`   SIGTERM: the listener exited 0`);
}

/** The digest the secondary's tag points at, undefined while it has none. */
async function secondaryDigest(url, repository, tag) {
  try {
    const res = await fetch(`${url}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: { Accept: ACCEPT },
      signal: AbortSignal.timeout(1_000),
    });
    return res.status === 200 ? (res.headers.get('docker-content-digest') ?? undefined) : undefined;
  } catch {
    return undefined;
  }
}

/** Calls `check` every 50 ms until it is true; rejects with 'timeout' after `ms`, or with what `check` throws. */
async function until(ms, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (interrupted) throw new Error('interrupted');
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('timeout');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The caller's environment without any GEO_SYNC_* setting: only the demo's registries. */
function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('GEO_SYNC_')));
}

/** Runs the CLI as a user would, prints its output indented, and checks its exit code. */
async function geoSync(args, env, expectedCode, meaning) {
  if (interrupted) throw new Error('interrupted');
  say(`   $ geo-sync ${args.join(' ')}`);
  // Only the demo's registries: no GEO_SYNC_* setting of the caller's shell may point elsewhere.
  const inherited = inheritedEnv();
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...inherited, GEO_SYNC_STATE_DIR: join(running.dir, 'state'), ...env },
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
