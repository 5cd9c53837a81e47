import type { ChildProcess } from 'node:child_process';
import { spawnGeoSync, type CliResult } from './cli.js';

/** A `geo-sync listen` process the test started, with the JSON log lines it has written so far. */
export interface RunningListener {
  child: ChildProcess;
  done: Promise<CliResult>;
  lines: Record<string, unknown>[];
  /** http://127.0.0.1:port */
  url: string;
}

/** Polls until `check` holds; a timeout fails the test with `describe()` (never an assertion on speed). */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
  describe: () => Promise<string> | string = () => 'no detail',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms: ${await describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs `geo-sync listen --port <port> <args>` with `env`, and resolves once its /healthz answers 200. */
export async function startListenerProcess(port: number, args: string[], env: Record<string, string>): Promise<RunningListener> {
  const { child, done } = spawnGeoSync(['listen', '--port', String(port), ...args], env);
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    const complete = (partial + chunk.toString()).split('\n');
    partial = complete.pop()!;
    for (const line of complete) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    async () => (await fetch(`${url}/healthz`)).status === 200,
    15_000,
    async () => `listener did not come up: ${JSON.stringify((await Promise.race([done, Promise.resolve(undefined)])) ?? lines)}`,
  );
  return { child, done, lines, url };
}
