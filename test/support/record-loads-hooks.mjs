// Module loader hooks (registered by record-loads.mjs): note every file: module as it is loaded.
import { appendFileSync } from 'node:fs';

let to;

export function initialize(data) {
  to = data.to;
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:')) appendFileSync(to, `${url}\n`);
  return nextLoad(url, context);
}
