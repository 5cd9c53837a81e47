// Builds the registry that serves the OCI 1.1 referrers API (go-containerregistry's in-memory
// registry, ./main.go) with Debian's Go 1.23 and go-containerregistry source from
// bookworm-backports (scripts/install-system-packages.sh installs both). One build for the tests
// (../referrers-registry.ts) and the demo (scripts/demo.mjs); plain JavaScript so both can run it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const GO = '/usr/lib/go-1.23/bin/go';
const GO_PATH = '/usr/share/gocode';
const GGCR_REGISTRY_PACKAGE = join(GO_PATH, 'src/github.com/google/go-containerregistry/pkg/registry');
const SOURCE_DIR = dirname(fileURLToPath(import.meta.url));
const CACHE_DIR = join(SOURCE_DIR, '../../../node_modules/.cache/geo-sync-referrers-registry');
const BINARY_NAME = 'referrers-registry';
export const INSTALL_HINT = 'Install them with scripts/install-system-packages.sh (Go 1.23 and go-containerregistry from Debian bookworm-backports).';

/** Where the binary built from today's main.go lives: cached by a hash of main.go, so only a change to it rebuilds. */
export function referrersRegistryBinaryPath() {
  const hash = createHash('sha256')
    .update(readFileSync(join(SOURCE_DIR, 'main.go')))
    .digest('hex')
    .slice(0, 16);
  return join(CACHE_DIR, hash, BINARY_NAME);
}

/** What the build needs and this machine lacks (empty: it can build). */
export function missingBuildTools() {
  return [GO, GGCR_REGISTRY_PACKAGE].filter((path) => !existsSync(path));
}

/**
 * Builds the binary unless it is built already; resolves with its path. Safe when several test
 * workers build at once: each builds into its own directory, the first rename wins.
 */
export async function buildReferrersRegistry() {
  const missing = missingBuildTools();
  if (missing.length > 0) {
    throw new Error(`The referrers-API test registry needs Go 1.23 and go-containerregistry (missing: ${missing.join(', ')}). ${INSTALL_HINT}`);
  }
  const finalBinary = referrersRegistryBinaryPath();
  if (existsSync(finalBinary)) return finalBinary;
  const finalDir = dirname(finalBinary);
  mkdirSync(CACHE_DIR, { recursive: true });
  const buildDir = mkdtempSync(`${finalDir}.building-`);
  try {
    await goBuild(join(buildDir, BINARY_NAME));
    try {
      renameSync(buildDir, finalDir);
    } catch (err) {
      // Another worker renamed its build first; theirs is built from the same main.go.
      if (!existsSync(finalBinary)) throw err;
    }
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
  return finalBinary;
}

async function goBuild(output) {
  try {
    await promisify(execFile)(GO, ['build', '-trimpath', '-o', output, '.'], {
      cwd: SOURCE_DIR,
      env: {
        ...process.env,
        // Debian ships the Go source of its Go libraries as a GOPATH tree, not as modules.
        GO111MODULE: 'off',
        GOPATH: GO_PATH,
        GOFLAGS: '',
        GOTOOLCHAIN: 'local',
        // A static binary, and no C compiler needed.
        CGO_ENABLED: '0',
        // Go's own build cache (~/.cache/go-build) outlives npm ci, which wipes node_modules: with it
        // warm, a rebuild only links. Without a home directory, keep it beside the binaries.
        ...(!process.env.GOCACHE && !process.env.HOME && !process.env.XDG_CACHE_HOME && { GOCACHE: join(CACHE_DIR, 'go-build') }),
      },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    // execFile's message holds the command and its stderr (the compiler's errors).
    throw new Error(`go build of ${join(SOURCE_DIR, 'main.go')} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}
