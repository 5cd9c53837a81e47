/** Registry clients for one batch of work, opened lazily and closed together. */
import { RegistryClient, invalidInput, type EngineLogger, type Endpoints } from '../engine/index.js';
import type { Catalog } from './fan-out.js';
import type { Registries } from './ports.js';

export function openRegistries(endpoints: Endpoints, options: { concurrency?: number; logger?: EngineLogger } = {}): Registries {
  const open = new Map<string, RegistryClient>();
  const client = (name: string, endpoint: Endpoints['primary'], prefix = '') => {
    let existing = open.get(name);
    if (!existing) open.set(name, (existing = new RegistryClient(endpoint, { ...options, prefix })));
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
    primary: () => client('\0primary', endpoints.primary),
    secondary(name) {
      const found = site(name);
      return client(name, found.endpoint, found.scope.prefix);
    },
    async close() {
      // The in-flight limit each registry settled at in this batch: the figure to tune GEO_SYNC_CONCURRENCY by.
      for (const c of open.values()) options.logger?.debug('registry traffic', { registry: c.host, ...c.transport.stats });
      await Promise.all([...open.values()].map((c) => c.close()));
      open.clear();
    },
  };
}

export function registryCatalog(registries: Registries): Catalog {
  return { page: (options) => registries.primary().listCatalogPage(options) };
}
