// The CLI's process start: `geo-sync --help` five times, the floor under every timed run of ours.
import { expectOk, log, runOurs, sample, seconds, type Sample } from './harness.js';
import { median } from './measure.js';

export async function benchStartup(): Promise<Sample[]> {
  const startup: Sample[] = [];
  for (let i = 0; i < 5; i++) startup.push(sample(expectOk(await runOurs(['--help']), 'geo-sync --help')));
  log(`CLI process start (geo-sync --help): median ${seconds(median(startup.map((s) => s.wallMs)))}`);
  return startup;
}
