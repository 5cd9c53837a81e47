// Webhook payloads shaped as each vendor documents them, written by hand for tests. Every field a
// vendor sends is here, the URLs included, though geo-sync reads none of them.
import { createHmac, randomUUID } from 'node:crypto';

/**
 * Harbor's "Default" payload, as in goharbor.io, "Configure Webhook Notifications"
 * (https://goharbor.io/docs/latest/working-with-projects/project-configuration/configure-webhooks/):
 * `type`, `occur_at` in epoch seconds, `operator`, and `event_data` with the resources (digest,
 * tag, resource_url) and the repository (`repo_full_name` is `<project>/<name>`).
 */
export function harborPayload(
  type: string,
  repository: string,
  resources: { tag: string; digest: string }[],
  occurAt: number,
  host = 'harbor.example.com',
): Record<string, unknown> {
  const [namespace, ...name] = repository.split('/');
  return {
    type,
    occur_at: Math.floor(occurAt),
    operator: 'admin',
    event_data: {
      resources: resources.map(({ tag, digest }) => ({
        digest,
        tag,
        resource_url: `${host}/${repository}${tag.startsWith('sha256:') ? `@${tag}` : `:${tag}`}`,
      })),
      repository: { date_created: Math.floor(occurAt) - 3600, name: name.join('/'), namespace, repo_full_name: repository, repo_type: 'private' },
    },
  };
}

/**
 * Quay's "Repository Push" notification, as in Red Hat Quay, "Use Red Hat Quay", chapter
 * "Repository notifications" (https://docs.redhat.com/en/documentation/red_hat_quay/3/html/use_red_hat_quay/repository_notifications).
 */
export function quayPush(repository: string, tags: string[], host = 'quay.example.com'): Record<string, unknown> {
  const [namespace, ...name] = repository.split('/');
  return {
    name: name.join('/'),
    repository,
    namespace,
    docker_url: `${host}/${repository}`,
    homepage: `https://${host}/repository/${repository}`,
    updated_tags: tags,
  };
}

/**
 * GitHub's `package` and `registry_package` events for a container version, as in GitHub Docs,
 * "Webhook events and payloads" (https://docs.github.com/en/webhooks/webhook-events-and-payloads#package
 * and #registry_package): `action`, the package (`package_type` CONTAINER, `owner`, `namespace`
 * for registry_package) with its `package_version` and `container_metadata.tag` {name, digest}.
 */
export function githubPackageEvent(
  event: 'package' | 'registry_package',
  owner: string,
  name: string,
  tag: { tag: string; digest: string },
  action = 'published',
): Record<string, unknown> & { package?: unknown } {
  const login = { login: owner, id: 9919, type: 'Organization', html_url: `https://github.com/${owner}` };
  const version = {
    id: 1234567,
    version: tag.digest,
    name: tag.digest,
    description: '',
    summary: '',
    html_url: `https://github.com/orgs/${owner}/packages/container/${name}/1234567`,
    target_commitish: '',
    target_oid: '',
    created_at: '2026-12-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
    metadata: [],
    container_metadata: { tag: { name: tag.tag, digest: tag.digest }, labels: { description: '', source: '', revision: '' }, manifest: {} },
    package_files: [],
    author: login,
    installation_command: `docker pull ghcr.io/${owner.toLowerCase()}/${name}:${tag.tag || tag.digest}`,
    package_url: `ghcr.io/${owner.toLowerCase()}/${name}:${tag.tag || tag.digest}`,
  };
  const pkg = {
    id: 42,
    name,
    ...(event === 'registry_package' ? { namespace: owner } : {}),
    description: null,
    ecosystem: 'CONTAINER',
    package_type: 'CONTAINER',
    html_url: `https://github.com/orgs/${owner}/packages/container/package/${name}`,
    created_at: '2026-11-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
    owner: login,
    package_version: version,
    registry: {
      about_url: 'https://docs.github.com/packages',
      name: 'GitHub CONTAINER registry',
      type: 'CONTAINER',
      url: `https://ghcr.io/${owner}`,
      vendor: 'GitHub Inc',
    },
  };
  return {
    action,
    [event]: pkg,
    repository: { id: 1, name, full_name: `${owner}/${name}`, private: true, owner: login },
    organization: login,
    sender: login,
    delivery: randomUUID(),
  };
}

/** `X-Hub-Signature-256` as GitHub computes it: `sha256=` and the hex HMAC-SHA256 of the body with the secret. */
export function signGitHub(body: Buffer | string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
