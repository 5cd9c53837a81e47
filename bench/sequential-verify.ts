// The peer for `geo-sync verify`: how GitLab Geo verifies, one request at a time. List the tags
// on both sides, then HEAD every tag in turn (primary, then secondary) with the full Accept
// header over one keep-alive connection per registry, and compare. Run as a child process
// (`node dist/bench.mjs sequential-verify ...`) so that it pays a process start as the CLI does.
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { MANIFEST_ACCEPT } from '../test/support/seed.js';

export interface SequentialVerifyResult {
  status: 'synced' | 'mismatch';
  primaryTags: number;
  secondaryTags: number;
  differences: number;
  requests: number;
}

export async function sequentialVerify(primaryUrl: string, secondaryUrl: string, repository: string): Promise<SequentialVerifyResult> {
  let requests = 0;
  // One keep-alive connection per registry, as any HTTP client would keep (undici, and so fetch,
  // closes the connection after every HEAD: that would make this peer slower than it need be).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (method: 'GET' | 'HEAD', url: string, accept?: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> => {
    requests++;
    return new Promise((resolve, reject) => {
      const req = request(url, { method, agent, headers: accept ? { accept } : {} }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  };

  const listTags = async (base: string): Promise<string[]> => {
    const tags: string[] = [];
    for (let next: string | undefined = `${base}/v2/${repository}/tags/list`; next;) {
      const response = await send('GET', next);
      if (response.status === 404) return tags;
      if (response.status !== 200) throw new Error(`GET ${next} -> ${response.status}`);
      const body = JSON.parse(response.body) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = String(response.headers.link ?? '').match(/<([^>]+)>\s*;\s*rel="?next"?/)?.[1];
      next = link ? new URL(link, next).toString() : undefined;
    }
    return tags;
  };

  const digests = async (base: string, tags: string[]): Promise<Map<string, string>> => {
    const map = new Map<string, string>();
    for (const tag of tags) {
      const response = await send('HEAD', `${base}/v2/${repository}/manifests/${tag}`, MANIFEST_ACCEPT);
      if (response.status === 404) continue;
      const digest = response.headers['docker-content-digest'];
      if (typeof digest !== 'string') throw new Error(`HEAD ${base} ${repository}:${tag} -> ${response.status} without Docker-Content-Digest`);
      if (response.status !== 200) throw new Error(`HEAD ${base} ${repository}:${tag} -> ${response.status}`);
      map.set(tag, digest);
    }
    return map;
  };

  const primary = await digests(primaryUrl, await listTags(primaryUrl));
  const secondary = await digests(secondaryUrl, await listTags(secondaryUrl));
  agent.destroy();
  let differences = 0;
  for (const [tag, digest] of primary) if (secondary.get(tag) !== digest) differences++;
  for (const tag of secondary.keys()) if (!primary.has(tag)) differences++;
  return { status: differences === 0 ? 'synced' : 'mismatch', primaryTags: primary.size, secondaryTags: secondary.size, differences, requests };
}
