/** Registry clients for one batch of work, opened lazily and closed together. */
import { invalidInput, openRegistry, type Registry, type EngineLogger, type Endpoints, type ObservedResponse } from '../engine/index.js';
import type { Catalog } from './fan-out.js';
import type { Metrics, Registries } from './ports.js';
import { repositorySourceFrom, sourceCatalog, type RepositorySource } from './repository-source.js';

export interface RegistriesOptions {
  concurrency?: number;
  logger?: EngineLogger;
  /** Told of each registry answer, with the registry's role and configured name (`primary`, or the secondary's). */
  observe?: (registry: { role: 'primary' | 'secondary'; name: string }, observed: ObservedResponse) => void;
  /** Where each registry's 429s are counted (`RegistryThrottled`) when the batch closes. */
  metrics?: Metrics;
}

/** The primary's key among the open clients: no secondary's configured name. */
const PRIMARY_KEY = '\0primary';

export function openRegistries(endpoints: Endpoints, options: RegistriesOptions = {}): Registries {
  const open = new Map<string, Registry>();
  const { observe, metrics, ...transport } = options;
  const client = (name: string, endpoint: Endpoints['primary'], registry: { role: 'primary' | 'secondary'; name: string }, prefix = '') => {
    let existing = open.get(name);
    if (!existing) {
      const onResponse = observe ? { onResponse: (observed: ObservedResponse) => observe(registry, observed) } : {};
      open.set(name, (existing = openRegistry(endpoint, { ...transport, ...onResponse, prefix })));
    }
    return existing;
  };
  const site = (name: string) => {
    const found = endpoints.secondaries.find((s) => s.name === name);
    if (!found) throw invalidInput('UNKNOWN_SECONDARY', `no secondary named ${JSON.stringify(name)} is configured`);
    return found;
  };
  return {
    secondaryNames: endpoints.secondaries.map((s) => s.name),
    secondaries: endpoints.secondaries,
    scopeOf: (name) => site(name).scope,
    primary: () => client(PRIMARY_KEY, endpoints.primary, { role: 'primary', name: 'primary' }),
    secondary(name) {
      const found = site(name);
      return client(name, found.endpoint, { role: 'secondary', name }, found.scope.prefix);
    },
    async close() {
      // The in-flight limit each registry settled at in this batch: the figure to tune GEO_SYNC_CONCURRENCY by.
      for (const [name, c] of open) {
        options.logger?.debug('registry traffic', { registry: c.host, ...c.stats });
        if (c.stats.throttled === 0) continue;
        if (name === PRIMARY_KEY) metrics?.add('RegistryThrottled', c.stats.throttled, 'Count');
        else metrics?.addForSecondary?.(name, 'RegistryThrottled', c.stats.throttled, 'Count');
      }
      await Promise.all([...open.values()].map((c) => c.close()));
      open.clear();
    },
  };
}

/** The primary's repositories, from the configured source (GEO_SYNC_REPOSITORIES_FILE, GitLab's API, or `_catalog`). */
export function registryCatalog(registries: Registries, source: RepositorySource = repositorySourceFrom(process.env)): Catalog {
  return sourceCatalog(
    source,
    (options) => registries.primary().listCatalogPage(options),
    () => registries.primary().host,
  );
}
