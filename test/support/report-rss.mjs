// Preloaded with `node --import` so a test can read the CLI process's own peak RSS (kilobytes).
process.on('exit', () => process.stderr.write(`\npeak-rss-kb=${process.resourceUsage().maxRSS}\n`));
