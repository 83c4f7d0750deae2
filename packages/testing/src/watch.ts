import { Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface RelistingWatchOptions<T extends KubernetesObject> {
  /** Collection path, e.g. `/api/v1/namespaces/ns/configmaps`. */
  path: string;
  /** Lists the same collection (e.g. `() => core.listNamespacedConfigMap({ namespace })`). */
  list: () => Promise<KubernetesListObject<T>>;
  /** Extra watch query parameters (labelSelector, fieldSelector...). */
  queryParams?: Record<string, string>;
  /** Start watching from this resourceVersion instead of listing first (it may be too old: that is handled). */
  resourceVersion?: string;
  onEvent: (type: WatchEventType, obj: T) => void;
  /** Called with the full list after every (re)list: consumers replace their cache with it. */
  onList?: (items: T[], resourceVersion: string) => void;
  /** Called for every `410 Gone` (HTTP status or ERROR event) before relisting. */
  onGone?: () => void;
  /** Unexpected errors; the watch keeps retrying with backoff. */
  onError?: (err: unknown) => void;
}

export interface RelistingWatch {
  /** The last resourceVersion seen (list, event or bookmark). */
  readonly resourceVersion: string;
  /** How many lists were made, the first included. */
  readonly lists: number;
  /** How many `410 Gone` responses were seen. */
  readonly gone: number;
  stop(): void;
}

function isGone(obj: unknown): boolean {
  const o = obj as { code?: number; statusCode?: number; reason?: string } | null | undefined;
  return o?.code === 410 || o?.statusCode === 410 || o?.reason === 'Expired' || o?.reason === 'Gone';
}

/**
 * list → watch from the list's resourceVersion → on `410 Gone` (the resourceVersion was compacted away or is older
 * than the watch cache) list again and watch from the new resourceVersion. Normal watch ends (server timeouts)
 * resume from the last resourceVersion without a list. Retries back off from 100 ms to 5 s; never a tight loop.
 */
export function watchWithRelist<T extends KubernetesObject>(kc: KubeConfig, opts: RelistingWatchOptions<T>): RelistingWatch {
  const watch = new Watch(kc);
  let rv = opts.resourceVersion ?? '';
  let lists = 0;
  let gone = 0;
  let stopped = false;
  let failures = 0;
  let current: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;

  const schedule = (): void => {
    if (stopped) return;
    const backoff = failures === 0 ? 0 : Math.min(100 * 2 ** (failures - 1), 5_000);
    timer = setTimeout(() => void cycle(), backoff);
  };

  const cycle = async (): Promise<void> => {
    if (stopped) return;
    try {
      if (!rv) {
        const list = await opts.list();
        lists++;
        rv = list.metadata?.resourceVersion ?? '';
        opts.onList?.(list.items, rv);
      }
      let sawGone = false;
      current = await watch.watch(
        opts.path,
        { ...opts.queryParams, resourceVersion: rv, allowWatchBookmarks: true },
        (type: string, obj: T) => {
          if (type === 'ERROR') {
            if (isGone(obj)) {
              sawGone = true;
            } else {
              opts.onError?.(obj);
            }
            return;
          }
          const objRv = obj.metadata?.resourceVersion;
          if (objRv) rv = objRv;
          if (type === 'BOOKMARK') return;
          failures = 0;
          opts.onEvent(type as WatchEventType, obj);
        },
        (err: unknown) => {
          if (stopped) return;
          if (sawGone || isGone(err)) {
            gone++;
            rv = ''; // relist: events between the old resourceVersion and now are lost, the list is the truth
            opts.onGone?.();
            failures++;
          } else if (err) {
            opts.onError?.(err);
            failures++;
          }
          schedule();
        },
      );
      if (stopped) current.abort();
    } catch (err) {
      if (isGone(err)) {
        gone++;
        rv = '';
        opts.onGone?.();
      } else {
        opts.onError?.(err);
      }
      failures++;
      schedule();
    }
  };

  schedule();
  return {
    get resourceVersion() { return rv; },
    get lists() { return lists; },
    get gone() { return gone; },
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      current?.abort();
    },
  };
}
