import type { KubeClient, KubernetesObject } from '@kedge/kube';
import { isObject, type JsonObject } from '@kedge/protocol';
import { readJsonFile, writeFileAtomic } from './process-state.js';
import type { LastDesired } from './reported.js';

/**
 * What survives an agent restart without the hub: the last desired document and its outcome. What was reported is
 * not cached: it is read from the twin on every (re)connection anyway.
 */
export interface CachedTwin {
  /** The last `$edgeAgent` desired document received (user part) and its `$version`. */
  readonly desired?: JsonObject;
  readonly last?: LastDesired;
}

const KEY = 'twin.json';

/** Where the twin cache is kept: a Secret on Kubernetes ({@link TwinCache}), a file on the process runtime ({@link FileTwinCache}). */
export interface TwinCacheStore {
  /** The cached twin; empty when there is none or it cannot be read as one. */
  load(): Promise<CachedTwin>;
  save(t: CachedTwin): Promise<void>;
}

function parseCached(v: unknown): CachedTwin {
  if (!isObject(v)) return {};
  const last = isObject(v['last']) && typeof v['last']['version'] === 'number' ? (v['last'] as unknown as LastDesired) : undefined;
  return {
    ...(isObject(v['desired']) ? { desired: v['desired'] } : {}),
    ...(last ? { last } : {}),
  };
}

/**
 * The process runtime's twin cache: `twin.json` in its state directory (mode 0600: desired properties carry
 * registry passwords), replaced atomically.
 */
export class FileTwinCache implements TwinCacheStore {
  readonly #dir: string;
  constructor(stateDir: string) {
    this.#dir = stateDir;
  }
  async load(): Promise<CachedTwin> {
    return parseCached(await readJsonFile(this.#dir, KEY));
  }
  async save(t: CachedTwin): Promise<void> {
    await writeFileAtomic(this.#dir, KEY, JSON.stringify(t));
  }
}

/**
 * The twin cache, kept in a Secret of the device's namespace (`kedge-agent-twin`, key `twin.json`). A Secret, not a
 * ConfigMap, because desired properties carry registry passwords; not a file, because the agent's pod may be
 * rescheduled to another node (or run as two replicas), and the namespace is the one place every replica reaches.
 * Not labelled `managed-by: kedge-agent`, so the controller neither caches nor prunes it.
 */
export class TwinCache implements TwinCacheStore {
  readonly #kube: KubeClient;
  readonly #namespace: string;
  readonly #name: string;

  constructor(kube: KubeClient, namespace: string, name = 'kedge-agent-twin') {
    this.#kube = kube;
    this.#namespace = namespace;
    this.#name = name;
  }

  /** The cached twin; empty when there is none or it cannot be read as one. */
  async load(): Promise<CachedTwin> {
    const s = await this.#kube.get<KubernetesObject & { data?: Record<string, string> }>('v1', 'Secret', this.#namespace, this.#name);
    const raw = s?.data?.[KEY];
    if (!raw) return {};
    try {
      return parseCached(JSON.parse(Buffer.from(raw, 'base64').toString('utf8')));
    } catch {
      return {};
    }
  }

  async save(t: CachedTwin): Promise<void> {
    await this.#kube.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: this.#name, namespace: this.#namespace, labels: { 'app.kubernetes.io/part-of': 'kedge', 'app.kubernetes.io/component': 'twin-cache' } },
        type: 'Opaque',
        data: { [KEY]: Buffer.from(JSON.stringify(t)).toString('base64') },
      },
      { fieldManager: 'kedge-twin-sync', force: true },
    );
  }
}
