/**
 * Helpers for this package's control-plane tests (`*.int.test.ts`). Not exported from the package. kube may not
 * import `@kedge/testing` (same layer), so the little it needs is here: the kubeconfig the `cluster` project's
 * global setup provides, `eventually`, per-test namespaces and a loopback TCP proxy that can break connections.
 */
import { randomBytes } from 'node:crypto';
import { Socket, createServer } from 'node:net';
import type { Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { inject } from 'vitest';
import type { KubeClient } from './client.js';
import { ClusterConfig } from './config.js';
import type { KubernetesObject } from './types.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set by packages/testing/src/vitest-global-setup.ts. */
    kedgeKubeconfig: string;
  }
}

/** The test control plane's admin kubeconfig. A new instance each call: its own connections and discovery. */
export function testClusterConfig(): ClusterConfig {
  return ClusterConfig.fromFiles([inject('kedgeKubeconfig')]);
}

/** A logger for tests: silent unless `KEDGE_TEST_LOG` names a level. */
export function testLogger(): Logger {
  return pino({ level: process.env['KEDGE_TEST_LOG'] ?? 'silent' });
}

/** Polls `fn` until it returns without throwing, and returns its value; throws the last failure at the deadline. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let pause = 20;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() >= end) throw err;
    }
    await sleep(pause);
    pause = Math.min(pause * 2, 250);
  }
}

/** Creates a fresh namespace `<prefix>-<random>`; one per test. */
export async function createNamespace(client: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

/**
 * A loopback TCP proxy in front of the apiserver. TLS passes through untouched (the apiserver certificate is for
 * 127.0.0.1, any port). It makes real network failures: {@link TcpProxy.breakAll} resets every connection (what a
 * dropped Wi-Fi or a restarted apiserver does to a watch), {@link TcpProxy.freeze} keeps connections open but
 * stops forwarding (a half-open connection: the silent stall no error ever reports).
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<[Socket, Socket]>();
  readonly #frozen: Socket[] = [];
  #port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((client) => {
      const upstream = new Socket();
      const pair: [Socket, Socket] = [client, upstream];
      this.#pairs.add(pair);
      const drop = (): void => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      upstream.connect(this.#target.port, this.#target.host, () => {
        client.pipe(upstream);
        upstream.pipe(client);
      });
    });
  }

  static async start(server: string): Promise<TcpProxy> {
    const url = new URL(server);
    const proxy = new TcpProxy({ host: url.hostname, port: Number(url.port) });
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    const addr = proxy.#server.address();
    if (addr === null || typeof addr === 'string') throw new Error('proxy has no port');
    proxy.#port = addr.port;
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  /** Open client connections. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Resets every open connection (RST on both sides). New connections work. */
  breakAll(): void {
    for (const [a, b] of [...this.#pairs]) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.#pairs.clear();
  }

  /** Stops forwarding on every open connection without closing it. New connections work. */
  freeze(): void {
    for (const [a, b] of this.#pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
      this.#frozen.push(a, b);
    }
    this.#pairs.clear(); // they stay open and silent until close()
  }

  async close(): Promise<void> {
    this.breakAll();
    for (const s of this.#frozen) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Group, version and kind of the test CRD made by {@link ensureWidgetCrd}. */
export const WIDGET = { group: 'kubetest.kedge.io', apiVersion: 'kubetest.kedge.io/v1', kind: 'Widget', plural: 'widgets' } as const;

/**
 * Creates (server-side apply) a namespaced test CRD `Widget` with a status subresource and waits until the
 * apiserver serves it. Idempotent: every test file may call it.
 */
export async function ensureWidgetCrd(client: KubeClient): Promise<void> {
  const name = `${WIDGET.plural}.${WIDGET.group}`;
  await client.apply({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name },
    spec: {
      group: WIDGET.group,
      scope: 'Namespaced',
      names: { plural: WIDGET.plural, singular: 'widget', kind: WIDGET.kind, listKind: 'WidgetList' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  properties: { size: { type: 'integer', minimum: 0 }, color: { type: 'string' } },
                  // A JSON name a typed client's model serializer can drop (client-node 1.x did).
                  'x-kubernetes-preserve-unknown-fields': true,
                },
                status: {
                  type: 'object',
                  properties: { phase: { type: 'string' }, observedGeneration: { type: 'integer' } },
                },
              },
            },
          },
        },
      ],
    },
  });
  await eventually(async () => {
    const crd = await client.get<{ status?: { conditions?: { type: string; status: string }[] } } & KubernetesObject>(
      'apiextensions.k8s.io/v1',
      'CustomResourceDefinition',
      undefined,
      name,
    );
    if (!crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) {
      throw new Error(`CRD ${name} not established yet`);
    }
    // Discovery can lag behind Established for a moment.
    await client.list(WIDGET.apiVersion, WIDGET.kind, 'default');
  });
}
