// Preloaded with `node --import .../record-loads.mjs?to=<file>` so a test can see which files the
// CLI process loaded as ES modules: each one's file: URL, a line each, appended to <file>.
import { register } from 'node:module';

const to = new URL(import.meta.url).searchParams.get('to');
if (!to) throw new Error('record-loads.mjs: name the file to append to as ?to=<file>');
register(new URL('./record-loads-hooks.mjs', import.meta.url), { data: { to } });
