// The ECR API's view of a repository's images, read from and changed in the backing registry over
// HTTP: its tag list, a HEAD per tag for the digest, and the manifests pushed through the front
// (for the untagged ones). Removal follows ECR's BatchDeleteImage: a tag alone (and the image with
// it when no other tag points there), or an image by digest with every tag on it.
// go-containerregistry 0.14 keeps a manifest under its tag and under its digest separately:
// DELETE of /manifests/<tag> removes only that tag, DELETE of /manifests/<digest> leaves the tags.
import type { EcrState, PushRecord } from './ecr-state.js';

export interface EcrImage {
  digest: string;
  /** Sorted. Empty for an untagged image. */
  tags: string[];
  mediaType: string;
  pushedAt: Date;
}

export interface ManifestFacts {
  /** The manifest's artifactType, else its config's media type (OCI 1.1), as ECR reports it. */
  artifactMediaType?: string;
  sizeInBytes?: number;
  /** The digest of the manifest's subject: ECR's subjectManifestDigest for a referrer. */
  subjectManifestDigest?: string;
}

const HEAD_CONCURRENCY = 16;
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** Every image of `repo`, tagged ones first (by first tag), then untagged ones by push time. */
export async function readImages(state: EcrState, repo: string): Promise<EcrImage[]> {
  const tags = await listTags(state.backingUrl, repo);
  const heads: { tag: string; digest: string; mediaType: string }[] = [];
  for (let i = 0; i < tags.length; i += HEAD_CONCURRENCY) {
    const batch = await Promise.all(tags.slice(i, i + HEAD_CONCURRENCY).map((tag) => headManifest(state.backingUrl, repo, tag)));
    batch.forEach((head, j) => head && heads.push({ tag: tags[i + j]!, ...head }));
  }
  const pushed = pushedImages(state, repo);
  const images = new Map<string, EcrImage>();
  for (const head of heads) {
    let image = images.get(head.digest);
    if (!image) {
      // A manifest pushed past the front (straight to the backing registry) counts as pushed now.
      const record = pushed.get(head.digest) ?? { pushedAt: new Date(), mediaType: head.mediaType };
      pushed.set(head.digest, record);
      images.set(head.digest, (image = { digest: head.digest, tags: [], mediaType: record.mediaType || head.mediaType, pushedAt: record.pushedAt }));
    }
    image.tags.push(head.tag);
  }
  await rememberChildren(state.backingUrl, repo, [...images.values()], pushed);
  await rememberUntagged(state.backingUrl, repo, [...images.keys()], pushed);
  const tagged = [...images.values()].sort((a, b) => compare(a.tags[0]!, b.tags[0]!));
  const untagged = [...pushed.entries()]
    .filter(([digest]) => !images.has(digest))
    .map(([digest, record]) => ({ digest, tags: [], mediaType: record.mediaType, pushedAt: record.pushedAt }))
    .sort((a, b) => a.pushedAt.getTime() - b.pushedAt.getTime() || compare(a.digest, b.digest));
  return [...tagged, ...untagged];
}

/**
 * Brings the untagged images up to date with the backing registry, as ECR knows every manifest
 * pushed: forgets those removed past the front, and learns the referrers pushed past it (found
 * through the backing registry's referrers API, from every image, referrers of referrers too).
 */
async function rememberUntagged(backingUrl: string, repo: string, tagged: string[], pushed: Map<string, PushRecord>): Promise<void> {
  const untagged = [...pushed.keys()].filter((digest) => !tagged.includes(digest));
  const present = await inBatches(untagged, (digest) => headManifest(backingUrl, repo, digest));
  untagged.forEach((digest, i) => present[i] === undefined && pushed.delete(digest));
  let subjects = [...new Set([...tagged, ...pushed.keys()])];
  const seen = new Set(subjects);
  while (subjects.length > 0) {
    const found = (await inBatches(subjects, (digest) => listReferrers(backingUrl, repo, digest))).flat();
    subjects = [];
    for (const referrer of found) {
      if (seen.has(referrer.digest)) continue;
      seen.add(referrer.digest);
      subjects.push(referrer.digest);
      if (!pushed.has(referrer.digest)) pushed.set(referrer.digest, { pushedAt: new Date(), mediaType: referrer.mediaType });
    }
  }
}

/** Learns the children of the tagged indexes pushed past the front: ECR lists each as an image of its own. */
async function rememberChildren(backingUrl: string, repo: string, tagged: EcrImage[], pushed: Map<string, PushRecord>): Promise<void> {
  const indexes = tagged.filter((image) => INDEX_TYPES.has(image.mediaType));
  const texts = await inBatches(indexes, (image) => manifestTextAt(backingUrl, repo, image.digest));
  for (const text of texts) {
    const children = text === undefined ? [] : ((JSON.parse(text) as { manifests?: { digest: string; mediaType: string }[] }).manifests ?? []);
    for (const child of children) if (!pushed.has(child.digest)) pushed.set(child.digest, { pushedAt: new Date(), mediaType: child.mediaType });
  }
}

async function inBatches<T, R>(items: T[], each: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += HEAD_CONCURRENCY) results.push(...(await Promise.all(items.slice(i, i + HEAD_CONCURRENCY).map(each))));
  return results;
}

async function listReferrers(backingUrl: string, repo: string, digest: string): Promise<{ digest: string; mediaType: string }[]> {
  const res = await fetch(`${backingUrl}/v2/${repo}/referrers/${digest}`);
  const text = await res.text();
  if (res.status !== 200) return [];
  return (JSON.parse(text) as { manifests?: { digest: string; mediaType: string }[] }).manifests ?? [];
}

/** Removes `tag`; the image goes with it when no other tag points at it (ECR: "the last tag"). */
export async function deleteTag(state: EcrState, repo: string, image: EcrImage, tag: string): Promise<void> {
  await deleteManifest(state.backingUrl, repo, tag);
  if (image.tags.every((other) => other === tag)) await deleteImage(state, repo, { ...image, tags: [] });
}

/** Removes the image and every tag on it. */
export async function deleteImage(state: EcrState, repo: string, image: EcrImage): Promise<void> {
  for (const tag of image.tags) await deleteManifest(state.backingUrl, repo, tag);
  await deleteManifest(state.backingUrl, repo, image.digest);
  pushedImages(state, repo).delete(image.digest);
}

/** What DescribeImages tells beyond the digest: the artifact type, the layers' size, a referrer's subject. */
export async function manifestFacts(state: EcrState, repo: string, digest: string): Promise<ManifestFacts> {
  const text = await manifestText(state, repo, digest);
  if (text === undefined) return {};
  const manifest = JSON.parse(text) as { artifactType?: string; config?: { mediaType?: string }; layers?: { size?: number }[]; subject?: { digest?: string } };
  const artifactMediaType = manifest.artifactType ?? manifest.config?.mediaType;
  return {
    ...(artifactMediaType !== undefined && { artifactMediaType }),
    ...(manifest.config && { sizeInBytes: (manifest.layers ?? []).reduce((sum, layer) => sum + (layer.size ?? 0), 0) }),
    ...(manifest.subject?.digest !== undefined && { subjectManifestDigest: manifest.subject.digest }),
  };
}

/** The manifest's text as pushed; undefined when the backing registry does not have it. */
export function manifestText(state: EcrState, repo: string, digest: string): Promise<string | undefined> {
  return manifestTextAt(state.backingUrl, repo, digest);
}

async function manifestTextAt(backingUrl: string, repo: string, digest: string): Promise<string | undefined> {
  const res = await fetch(`${backingUrl}/v2/${repo}/manifests/${digest}`, { headers: { accept: '*/*' } });
  const text = await res.text();
  return res.status === 200 ? text : undefined;
}

function pushedImages(state: EcrState, repo: string): Map<string, PushRecord> {
  let images = state.pushed.get(repo);
  if (!images) state.pushed.set(repo, (images = new Map()));
  return images;
}

async function listTags(backingUrl: string, repo: string): Promise<string[]> {
  const res = await fetch(`${backingUrl}/v2/${repo}/tags/list`);
  const text = await res.text();
  if (res.status === 404) return []; // nothing pushed yet
  if (res.status !== 200) throw new Error(`GET tags/list of ${repo} -> ${res.status}: ${text}`);
  return (JSON.parse(text) as { tags?: string[] | null }).tags ?? [];
}

async function headManifest(backingUrl: string, repo: string, reference: string): Promise<{ digest: string; mediaType: string } | undefined> {
  const res = await fetch(`${backingUrl}/v2/${repo}/manifests/${encodeURIComponent(reference)}`, { method: 'HEAD', headers: { accept: '*/*' } });
  await res.arrayBuffer();
  const digest = res.headers.get('docker-content-digest');
  if (res.status !== 200 || !digest) return undefined; // removed since the listing
  return { digest, mediaType: res.headers.get('content-type') ?? '' };
}

async function deleteManifest(backingUrl: string, repo: string, reference: string): Promise<void> {
  const res = await fetch(`${backingUrl}/v2/${repo}/manifests/${encodeURIComponent(reference)}`, { method: 'DELETE' });
  const text = await res.text();
  if (res.status !== 202 && res.status !== 404) throw new Error(`DELETE ${reference} in ${repo} -> ${res.status}: ${text}`);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
