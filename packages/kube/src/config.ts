import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** An exec credential plugin (`users[].user.exec`, client.authentication.k8s.io): EKS, GKE, AKS, OIDC helpers. */
export interface ExecCredentialConfig {
  readonly apiVersion: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: readonly { readonly name: string; readonly value: string }[];
  readonly provideClusterInfo: boolean;
  /** Directory relative commands are resolved against (the kubeconfig's). */
  readonly baseDir: string;
}

/** How to reach and authenticate to one apiserver: what a kubeconfig context or a pod's ServiceAccount resolves to. */
export interface ClusterConfigInit {
  /** `https://host:port[/prefix]` (or `http://` for `kubectl proxy`). */
  readonly server: string;
  /** PEM CA bundle that signs the server certificate. @default the system roots */
  readonly ca?: string;
  /** PEM client certificate and key (mutual TLS). */
  readonly cert?: string;
  readonly key?: string;
  readonly insecureSkipTlsVerify?: boolean;
  /** SNI and certificate name to expect instead of the server URL's host. */
  readonly tlsServerName?: string;
  /** A bearer token. */
  readonly token?: string;
  /** A file holding a bearer token; re-read every minute (projected ServiceAccount tokens rotate). */
  readonly tokenFile?: string;
  readonly exec?: ExecCredentialConfig;
  /** `Impersonate-User` / `Impersonate-Group` on every request. */
  readonly impersonate?: { readonly user: string; readonly groups?: readonly string[] };
  /** The context's namespace (or the pod's own, in cluster). */
  readonly namespace?: string;
  /** Where this came from, for messages: a kubeconfig path and context, or `in-cluster`. */
  readonly source?: string;
}

/** A kubeconfig or in-cluster configuration that cannot be used, with what is wrong and where. */
export class ClusterConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterConfigError';
  }
}

/** Where a pod's ServiceAccount credentials are mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The cluster connection Kedge's Kubernetes clients and informers use. Immutable; build one with
 * {@link ClusterConfig.load} (kubectl's rules), {@link ClusterConfig.fromKubeconfig}, {@link ClusterConfig.inCluster}
 * or the constructor. Clients and informers made from the same instance share connections and discovery.
 */
export class ClusterConfig implements ClusterConfigInit {
  readonly server: string;
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName: string | undefined;
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly exec: ExecCredentialConfig | undefined;
  readonly impersonate: { readonly user: string; readonly groups?: readonly string[] } | undefined;
  readonly namespace: string | undefined;
  readonly source: string;

  constructor(init: ClusterConfigInit) {
    let url: URL;
    try {
      url = new URL(init.server);
    } catch {
      throw new ClusterConfigError(`${init.source ?? 'cluster config'}: server ${JSON.stringify(init.server)} is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ClusterConfigError(`${init.source ?? 'cluster config'}: server ${init.server} must be an http(s) URL`);
    }
    if ((init.cert === undefined) !== (init.key === undefined)) {
      throw new ClusterConfigError(`${init.source ?? 'cluster config'}: a client certificate needs its key, and a key its certificate`);
    }
    this.server = init.server.replace(/\/+$/, '');
    this.ca = init.ca;
    this.cert = init.cert;
    this.key = init.key;
    this.insecureSkipTlsVerify = init.insecureSkipTlsVerify ?? false;
    this.tlsServerName = init.tlsServerName;
    this.token = init.token;
    this.tokenFile = init.tokenFile;
    this.exec = init.exec;
    this.impersonate = init.impersonate;
    this.namespace = init.namespace;
    this.source = init.source ?? 'cluster config';
  }

  /** A copy with another server URL (e.g. a proxy) or impersonating someone. */
  with(change: { readonly server?: string; readonly impersonate?: ClusterConfigInit['impersonate'] }): ClusterConfig {
    return new ClusterConfig({ ...this, ...change });
  }

  /**
   * kubectl's rules: an explicit kubeconfig path; else `$KUBECONFIG` (a `:`-separated list, merged, missing files
   * skipped); else, inside a pod, its ServiceAccount; else `~/.kube/config`.
   */
  static load(opts: { readonly kubeconfig?: string; readonly context?: string; readonly env?: NodeJS.ProcessEnv } = {}): ClusterConfig {
    const env = opts.env ?? process.env;
    const ctx = opts.context !== undefined ? { context: opts.context } : {};
    if (opts.kubeconfig) return ClusterConfig.fromFiles([opts.kubeconfig], ctx);
    const fromEnv = (env['KUBECONFIG'] ?? '').split(delimiter).filter(Boolean);
    if (fromEnv.length > 0) {
      // kubectl skips listed files that do not exist; it is an error only when none does.
      const existing = fromEnv.filter((p) => existsSync(p));
      if (existing.length === 0) throw new ClusterConfigError(`$KUBECONFIG names no existing file (${fromEnv.join(delimiter)})`);
      return ClusterConfig.fromFiles(existing, ctx);
    }
    if (env['KUBERNETES_SERVICE_HOST'] && opts.context === undefined) return ClusterConfig.inCluster({ env });
    return ClusterConfig.fromFiles([join(homedir(), '.kube', 'config')], ctx);
  }

  /** Reads and merges kubeconfig files (the first definition of each name wins, as in kubectl). */
  static fromFiles(paths: readonly string[], opts: { readonly context?: string } = {}): ClusterConfig {
    const docs = paths.map((p) => {
      let text: string;
      try {
        text = readFileSync(p, 'utf8');
      } catch (e) {
        throw new ClusterConfigError(`kubeconfig ${p}: cannot read it (${(e as Error).message})`);
      }
      return { text, source: p, baseDir: dirname(resolve(p)) };
    });
    return resolveKubeconfig(docs, opts.context);
  }

  /** Parses one kubeconfig document (YAML or JSON). Relative file paths in it resolve against `baseDir`. */
  static fromKubeconfig(text: string, opts: { readonly context?: string; readonly baseDir?: string; readonly source?: string } = {}): ClusterConfig {
    return resolveKubeconfig([{ text, source: opts.source ?? 'kubeconfig', baseDir: opts.baseDir ?? process.cwd() }], opts.context);
  }

  /** The pod's ServiceAccount: `KUBERNETES_SERVICE_HOST`/`_PORT`, its CA, its (rotating) token file and namespace. */
  static inCluster(opts: { readonly env?: NodeJS.ProcessEnv; readonly dir?: string } = {}): ClusterConfig {
    const env = opts.env ?? process.env;
    const dir = opts.dir ?? SERVICE_ACCOUNT_DIR;
    const host = env['KUBERNETES_SERVICE_HOST'];
    const port = env['KUBERNETES_SERVICE_PORT'];
    if (!host || !port) throw new ClusterConfigError('in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (not running in a pod?)');
    const read = (file: string): string => {
      try {
        return readFileSync(join(dir, file), 'utf8');
      } catch (e) {
        throw new ClusterConfigError(`in-cluster: cannot read ${join(dir, file)} (${(e as Error).message}); is a ServiceAccount token mounted?`);
      }
    };
    const ca = read('ca.crt');
    read('token'); // fail now, not on the first request
    let namespace: string | undefined;
    try {
      namespace = readFileSync(join(dir, 'namespace'), 'utf8').trim() || undefined;
    } catch {
      namespace = undefined;
    }
    return new ClusterConfig({
      server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
      ca,
      tokenFile: join(dir, 'token'),
      ...(namespace ? { namespace } : {}),
      source: 'in-cluster',
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// kubeconfig parsing

const ClusterSchema = z
  .object({
    server: z.string().min(1),
    'certificate-authority': z.string().optional(),
    'certificate-authority-data': z.string().optional(),
    'insecure-skip-tls-verify': z.boolean().optional(),
    'tls-server-name': z.string().optional(),
    'proxy-url': z.string().optional(),
  })
  .passthrough();

const ExecSchema = z
  .object({
    apiVersion: z.string().min(1),
    command: z.string().min(1),
    args: z.array(z.string()).nullish(),
    env: z.array(z.object({ name: z.string(), value: z.string() })).nullish(),
    provideClusterInfo: z.boolean().optional(),
  })
  .passthrough();

const UserSchema = z
  .object({
    'client-certificate': z.string().optional(),
    'client-certificate-data': z.string().optional(),
    'client-key': z.string().optional(),
    'client-key-data': z.string().optional(),
    token: z.string().optional(),
    tokenFile: z.string().optional(),
    as: z.string().optional(),
    'as-groups': z.array(z.string()).nullish(),
    exec: ExecSchema.nullish(),
    'auth-provider': z.object({ name: z.string() }).passthrough().nullish(),
    username: z.string().optional(),
    password: z.string().optional(),
  })
  .passthrough();

const ContextSchema = z.object({ cluster: z.string().min(1), user: z.string().default(''), namespace: z.string().optional() }).passthrough();

const KubeconfigSchema = z
  .object({
    'current-context': z.string().optional(),
    clusters: z.array(z.object({ name: z.string().min(1), cluster: ClusterSchema }).passthrough()).nullish(),
    users: z.array(z.object({ name: z.string().min(1), user: UserSchema.nullish() }).passthrough()).nullish(),
    contexts: z.array(z.object({ name: z.string().min(1), context: ContextSchema }).passthrough()).nullish(),
  })
  .passthrough();

interface Doc {
  readonly text: string;
  readonly source: string;
  readonly baseDir: string;
}

interface Entry<T> {
  readonly value: T;
  readonly source: string;
  readonly baseDir: string;
  readonly path: string;
}

function resolveKubeconfig(docs: readonly Doc[], context: string | undefined): ClusterConfig {
  const clusters = new Map<string, Entry<z.infer<typeof ClusterSchema>>>();
  const users = new Map<string, Entry<z.infer<typeof UserSchema> | null | undefined>>();
  const contexts = new Map<string, Entry<z.infer<typeof ContextSchema>>>();
  let current: string | undefined;
  for (const doc of docs) {
    let raw: unknown;
    try {
      raw = parseYaml(doc.text);
    } catch (e) {
      throw new ClusterConfigError(`kubeconfig ${doc.source}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
    }
    if (raw === null || raw === undefined) continue; // an empty file contributes nothing (kubectl)
    const parsed = KubeconfigSchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new ClusterConfigError(`kubeconfig ${doc.source}: ${i?.path.join('.') || '(root)'}: ${i?.message ?? 'invalid'}`);
    }
    const kc = parsed.data;
    current ??= kc['current-context'] || undefined;
    const add = <I extends { name: string }, T>(map: Map<string, Entry<T>>, list: readonly I[] | null | undefined, value: (item: I) => T, section: string) => {
      (list ?? []).forEach((item, i) => {
        if (!map.has(item.name)) map.set(item.name, { value: value(item), source: doc.source, baseDir: doc.baseDir, path: `${section}[${i}]` });
      });
    };
    add(clusters, kc.clusters, (i) => i.cluster, 'clusters');
    add(users, kc.users, (i) => i.user, 'users');
    add(contexts, kc.contexts, (i) => i.context, 'contexts');
  }
  const sources = docs.map((d) => d.source).join(', ');
  const ctxName = context ?? current;
  if (!ctxName) throw new ClusterConfigError(`kubeconfig ${sources}: no current-context set and no context given`);
  const ctx = contexts.get(ctxName);
  if (!ctx) throw new ClusterConfigError(`kubeconfig ${sources}: context "${ctxName}" not found (contexts: ${[...contexts.keys()].join(', ') || 'none'})`);
  const cluster = clusters.get(ctx.value.cluster);
  if (!cluster) throw new ClusterConfigError(`kubeconfig ${ctx.source}: ${ctx.path}: cluster "${ctx.value.cluster}" of context "${ctxName}" not found`);
  const userEntry = ctx.value.user ? users.get(ctx.value.user) : undefined;
  if (ctx.value.user && !userEntry) throw new ClusterConfigError(`kubeconfig ${ctx.source}: ${ctx.path}: user "${ctx.value.user}" of context "${ctxName}" not found`);

  const c = cluster.value;
  const where = (e: Entry<unknown>, field: string) => `kubeconfig ${e.source}: ${e.path}.${field}`;
  const file = (e: Entry<unknown>, field: string, p: string): string => {
    const full = isAbsolute(p) ? p : join(e.baseDir, p);
    try {
      return readFileSync(full, 'utf8');
    } catch (err) {
      throw new ClusterConfigError(`${where(e, field)}: cannot read ${full} (${(err as Error).message})`);
    }
  };
  const b64 = (e: Entry<unknown>, field: string, data: string): string => {
    if (!/^[A-Za-z0-9+/=\s]*$/.test(data)) throw new ClusterConfigError(`${where(e, field)}: not base64`);
    return Buffer.from(data, 'base64').toString('utf8');
  };
  if (c['proxy-url']) throw new ClusterConfigError(`${where(cluster, 'cluster.proxy-url')}: proxies are not supported; reach the apiserver directly`);
  /** `<field>-data` (base64) wins over `<field>` (a file path), as in kubectl. */
  const dataOrFile = (e: Entry<unknown>, field: string, data: string | undefined, path: string | undefined): string | undefined =>
    data ? b64(e, `${field}-data`, data) : path ? file(e, field, path) : undefined;
  const ca = dataOrFile(cluster, 'cluster.certificate-authority', c['certificate-authority-data'], c['certificate-authority']);

  const u = userEntry?.value ?? {};
  const ue = userEntry as Entry<unknown> | undefined;
  if (ue && u['auth-provider']) {
    throw new ClusterConfigError(`${where(ue, 'user.auth-provider')}: auth-provider "${u['auth-provider'].name}" was removed from Kubernetes clients; use an exec credential plugin`);
  }
  if (ue && (u.username !== undefined || u.password !== undefined)) {
    throw new ClusterConfigError(`${where(ue, 'user.username')}: basic authentication was removed from Kubernetes; use a token or a client certificate`);
  }
  const cert = ue && dataOrFile(ue, 'user.client-certificate', u['client-certificate-data'], u['client-certificate']);
  const key = ue && dataOrFile(ue, 'user.client-key', u['client-key-data'], u['client-key']);
  const exec = u.exec && ue
    ? {
        apiVersion: u.exec.apiVersion,
        command: u.exec.command,
        args: u.exec.args ?? [],
        env: u.exec.env ?? [],
        provideClusterInfo: u.exec.provideClusterInfo ?? false,
        baseDir: ue.baseDir,
      }
    : undefined;
  const tokenFile = u.tokenFile && ue ? (isAbsolute(u.tokenFile) ? u.tokenFile : join(ue.baseDir, u.tokenFile)) : undefined;
  return new ClusterConfig({
    server: c.server,
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(c['insecure-skip-tls-verify'] ? { insecureSkipTlsVerify: true } : {}),
    ...(c['tls-server-name'] ? { tlsServerName: c['tls-server-name'] } : {}),
    ...(u.token ? { token: u.token } : {}),
    ...(tokenFile ? { tokenFile } : {}),
    ...(exec ? { exec } : {}),
    ...(u.as ? { impersonate: { user: u.as, ...(u['as-groups'] ? { groups: u['as-groups'] } : {}) } } : {}),
    ...(ctx.value.namespace ? { namespace: ctx.value.namespace } : {}),
    source: `kubeconfig ${sources} (context ${ctxName})`,
  });
}
