import { runCli } from './main.js';

// Entry point of the `geo-sync` binary.
process.exitCode = await runCli(process.argv.slice(2));
