import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../shared/engine/index.js';

/**
 * Registry 2.8 never paginates tag lists, but other registries do (GitLab, Harbor, Quay), with a
 * relative or absolute Link. A minimal server speaking just tags/list shows we follow every page.
 */
let server: Server;
let url: string;
const tags = Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, '0')}`);

beforeAll(async () => {
  server = createServer((req, res) => {
    const request = new URL(req.url ?? '/', 'http://x');
    const n = Number(request.searchParams.get('n') ?? 1000);
    const last = request.searchParams.get('last');
    if (request.pathname === '/v2/paged/tags/list') {
      const start = last ? tags.indexOf(last) + 1 : 0;
      const page = tags.slice(start, start + Math.min(n, 10));
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (start + page.length < tags.length) {
        const next = `/v2/paged/tags/list?n=10&last=${page.at(-1)}`;
        // Alternate relative and absolute forms, as registries differ.
        headers.link = `<${start === 0 ? next : `${url}${next}`}>; rel="next"`;
      }
      res.writeHead(200, headers).end(JSON.stringify({ name: 'paged', tags: page }));
    } else if (request.pathname === '/v2/million/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"name":"million","tags":[');
      for (let i = 0; i < 1_000_000; i += 10_000) {
        res.write(Array.from({ length: 10_000 }, (_, j) => `"tag-${i + j}"`).join(',') + (i + 10_000 < 1_000_000 ? ',' : ''));
      }
      res.end(']}');
    } else if (request.pathname === '/v2/endless/tags/list') {
      // 80 MB of tag list: past any sane page, so the client must stop reading, not run out of memory.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"tags":[');
      let sent = 0;
      const more = () => {
        while (sent < 80 && res.write(`"${'x'.repeat(1024 * 1024 - 4)}",`)) sent++;
        if (sent >= 80) res.end('"y"]}');
        else
          res.once('drain', () => {
            sent++;
            more();
          });
      };
      more();
    } else if (request.pathname === '/v2/hostile/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json', link: '<https://elsewhere.example/v2/x>; rel="next"' }).end('{"tags":["a"]}');
    } else if (request.pathname === '/v2/traversal/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"tags":["ok","../x"]}');
    } else if (request.pathname === '/v2/emptied/tags/list') {
      // Registry 2.8 after its last tag was deleted.
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"name":"emptied","tags":null}');
    } else if (request.pathname === '/v2/tagless/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } else if (request.pathname === '/v2/misrouted/tags/list') {
      // A proxy's or web server's own 404 page, not the registry's.
      res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body><h1>404 Not Found</h1></body></html>');
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('tag list pagination', () => {
  it('follows relative and absolute Link headers to the last page', async () => {
    const client = new RegistryClient({ url });
    expect((await client.listTags('paged'))!.sort()).toEqual(tags);
    await client.close();
  });

  it('refuses to follow a Link to another host', async () => {
    const client = new RegistryClient({ url });
    await expect(client.listTags('hostile')).rejects.toThrow(/another host/);
    await client.close();
  });

  it('refuses a listing with an invalid tag name, naming it', async () => {
    const client = new RegistryClient({ url });
    await expect(client.listTags('traversal')).rejects.toThrow(/invalid tag "\.\.\/x"/);
    await client.close();
  });

  it('reads a million-tag list in one page', async () => {
    const client = new RegistryClient({ url });
    const listed = await client.listTags('million');
    await client.close();
    expect(listed).toHaveLength(1_000_000);
    expect(new Set(listed).size).toBe(1_000_000);
  });

  it('stops reading a tag list larger than its 64 MiB cap, with a clear error', async () => {
    const client = new RegistryClient({ url });
    await expect(client.listTags('endless')).rejects.toThrow(/exceeds 67108864 bytes/);
    await client.close();
  });

  it('answers null for a repository that does not exist', async () => {
    const client = new RegistryClient({ url });
    expect(await client.listTags('missing')).toBeNull();
    await client.close();
  });

  it('reads `tags: null` as no tags, and a body without `tags` as an error', async () => {
    const client = new RegistryClient({ url });
    expect(await client.listTags('emptied')).toEqual([]);
    await expect(client.listTags('tagless')).rejects.toMatchObject({
      code: 'INVALID_RESPONSE',
      message: expect.stringMatching(/malformed tag list for tagless \(no "tags"\)/),
    });
    await client.close();
  });

  it('never reads a 404 that is not the registry\'s own "unknown" answer as a missing repository', async () => {
    const client = new RegistryClient({ url });
    await expect(client.listTags('misrouted')).rejects.toMatchObject({
      code: 'LISTING_FAILED',
      message: expect.stringMatching(/404 without a registry error/),
    });
    await client.close();
  });
});
