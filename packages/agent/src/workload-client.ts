import http from 'node:http';
import { IdentityEnv, RuntimeEnv, WORKLOAD_API_VERSION } from './module-env.js';

/** A workload API call that failed: `code` classifies it (never match on the message). */
export class WorkloadClientError extends Error {
  constructor(
    readonly code: 'EDGE_ERR_WORKLOAD_ENV' | 'EDGE_ERR_WORKLOAD_REFUSED' | 'EDGE_ERR_WORKLOAD_UNREACHABLE' | 'EDGE_ERR_WORKLOAD_BAD_RESPONSE',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'WorkloadClientError';
  }
}

/** What a module needs to call its workload API, as IoT Edge hands it over in the environment. */
export interface WorkloadClientIdentity {
  /** `IOTEDGE_WORKLOADURI`: `http://host:port/` or `unix:///path`. */
  readonly workloadUri: string;
  /** `IOTEDGE_MODULEID` (`$edgeHub`). */
  readonly moduleId: string;
  /** `IOTEDGE_MODULEGENERATIONID` (in Kedge, the module's workload secret). */
  readonly generationId: string;
  /** `IOTEDGE_APIVERSION`. @default {@link WORKLOAD_API_VERSION} */
  readonly apiVersion?: string;
}

/** A server certificate from the workload API: key, certificate chain, and the trust bundle it chains to. */
export interface WorkloadServerCertificate {
  readonly key: string;
  readonly cert: string;
  readonly trustBundle: string;
  readonly expiration: string;
}

/**
 * The workload identity from IoT Edge's variables (`IOTEDGE_WORKLOADURI`, `IOTEDGE_MODULEID`,
 * `IOTEDGE_MODULEGENERATIONID`, `IOTEDGE_APIVERSION`); undefined when the process is not in workload mode.
 */
export function workloadIdentityFromEnv(env: NodeJS.ProcessEnv): WorkloadClientIdentity | undefined {
  const workloadUri = env[IdentityEnv.workloadUri];
  const moduleId = env[RuntimeEnv.moduleId];
  const generationId = env[IdentityEnv.generationId];
  if (!workloadUri || !moduleId || !generationId) return undefined;
  const apiVersion = env[IdentityEnv.apiVersion];
  return { workloadUri, moduleId, generationId, ...(apiVersion ? { apiVersion } : {}) };
}

const MAX_RESPONSE = 256 * 1024;

async function call(id: WorkloadClientIdentity, method: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; json: unknown }> {
  let target: { socketPath: string } | { host: string; port: number };
  let uri: URL;
  try {
    uri = new URL(id.workloadUri);
  } catch (e) {
    throw new WorkloadClientError('EDGE_ERR_WORKLOAD_ENV', `${IdentityEnv.workloadUri} is not a URI`, { cause: e });
  }
  if (uri.protocol === 'unix:') target = { socketPath: uri.pathname };
  else if (uri.protocol === 'http:') target = { host: uri.hostname.replace(/^\[|\]$/g, ''), port: Number(uri.port || 80) };
  else throw new WorkloadClientError('EDGE_ERR_WORKLOAD_ENV', `${IdentityEnv.workloadUri} must be http:// or unix:// (got ${uri.protocol})`);
  const text = body === undefined ? undefined : JSON.stringify(body);
  const sep = path.includes('?') ? '&' : '?';
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...target,
        method,
        path: `${path}${sep}api-version=${encodeURIComponent(id.apiVersion ?? WORKLOAD_API_VERSION)}`,
        headers: { Accept: 'application/json', ...(text !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE) res.destroy(new WorkloadClientError('EDGE_ERR_WORKLOAD_BAD_RESPONSE', `Workload API response over ${MAX_RESPONSE} bytes`));
          else chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
          } catch (e) {
            reject(new WorkloadClientError('EDGE_ERR_WORKLOAD_BAD_RESPONSE', `Workload API answered ${res.statusCode ?? 0} without JSON`, { cause: e }));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new WorkloadClientError('EDGE_ERR_WORKLOAD_UNREACHABLE', `Workload API did not answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof WorkloadClientError ? e : new WorkloadClientError('EDGE_ERR_WORKLOAD_UNREACHABLE', `Workload API unreachable: ${(e as NodeJS.ErrnoException).code ?? e.message}`, { cause: e })));
    req.end(text);
  });
}

const field = (json: unknown, ...path: string[]): unknown => {
  let v: unknown = json;
  for (const p of path) v = typeof v === 'object' && v !== null && Object.hasOwn(v, p) ? (v as Record<string, unknown>)[p] : undefined;
  return v;
};

/**
 * Asks the workload API for a server certificate for `commonName` (what IoT Edge's edgeHub does at start, with CN =
 * `EdgeDeviceHostName`) and for the trust bundle. The certificate lives at most 90 days: restart before it expires.
 * @throws WorkloadClientError (`EDGE_ERR_WORKLOAD_REFUSED` with the API's message when it says no)
 */
export async function requestServerCertificate(id: WorkloadClientIdentity, commonName: string, opts: { validityMs?: number; timeoutMs?: number; now?: number } = {}): Promise<WorkloadServerCertificate> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const expiration = new Date((opts.now ?? Date.now()) + (opts.validityMs ?? 90 * 24 * 3600 * 1000)).toISOString();
  const path = `/modules/${encodeURIComponent(id.moduleId)}/genid/${encodeURIComponent(id.generationId)}/certificate/server`;
  const res = await call(id, 'POST', path, { commonName, expiration }, timeoutMs);
  const key = field(res.json, 'privateKey', 'bytes');
  const cert = field(res.json, 'certificate');
  const message = field(res.json, 'message');
  if (res.status !== 201) throw new WorkloadClientError('EDGE_ERR_WORKLOAD_REFUSED', `Workload API refused a server certificate for ${commonName}: ${res.status} ${typeof message === 'string' ? message.slice(0, 300) : ''}`);
  if (typeof key !== 'string' || typeof cert !== 'string') throw new WorkloadClientError('EDGE_ERR_WORKLOAD_BAD_RESPONSE', 'Workload API certificate response lacks privateKey.bytes or certificate');
  const bundle = await call(id, 'GET', '/trust-bundle', undefined, timeoutMs);
  const trustBundle = field(bundle.json, 'certificate');
  if (bundle.status !== 200 || typeof trustBundle !== 'string') throw new WorkloadClientError('EDGE_ERR_WORKLOAD_BAD_RESPONSE', `Workload API trust bundle: ${bundle.status}`);
  const exp = field(res.json, 'expiration');
  return { key, cert, trustBundle, expiration: typeof exp === 'string' ? exp : expiration };
}
