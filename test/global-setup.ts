import { execFileSync } from 'node:child_process';

// The CLI tests run the real binary, so build it once before any test file starts.
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
