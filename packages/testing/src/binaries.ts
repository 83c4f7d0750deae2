import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The five binaries `testenv/build.sh` builds; the harness needs every one of them. */
export const CONTROL_PLANE_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'] as const;
export type ControlPlaneBinary = (typeof CONTROL_PLANE_BINARIES)[number];

/** Thrown when the control-plane binaries (or the kwok module sources) are not there. Never a reason to skip. */
export class MissingBinariesError extends Error {
  override readonly name = 'MissingBinariesError';
}

/** Repository root: this file lives in packages/testing/{src,dist}/. */
export function repoRoot(): string {
  return process.env.KEDGE_REPO_ROOT ?? fileURLToPath(new URL('../../../', import.meta.url));
}

/** Pinned versions from testenv/versions.env (the same file testenv/build.sh reads). */
export function testenvVersions(root = repoRoot()): { k8s: string; kwok: string } {
  const text = readFileSync(join(root, 'testenv', 'versions.env'), 'utf8');
  const get = (k: string): string => {
    const m = new RegExp(`^${k}=(\\S+)`, 'm').exec(text);
    if (!m?.[1]) throw new Error(`testenv/versions.env has no ${k}`);
    return m[1];
  };
  return { k8s: get('K8S_VERSION'), kwok: get('KWOK_VERSION') };
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function goEnv(name: string): string | undefined {
  try {
    return execFileSync('go', ['env', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, GOTOOLCHAIN: 'local' } }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Finds the directory holding the control-plane binaries, without ever building them:
 * 1. `KEDGE_K8S_BIN` (what `.ci/run` exports), else
 * 2. the cache `testenv/build.sh` writes: `${KEDGE_TESTENV_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kedge-testenv}/
 *    k8s-v<K8S>-kwok-<KWOK>-<go version>/bin`, preferring the entry for the installed Go.
 * @throws MissingBinariesError naming every missing binary and the command that builds them.
 */
export function resolveBinDir(): string {
  const hint = 'Build them once with `bash testenv/build.sh` (15-20 min cold on 2 cores, cached afterwards) ' +
    'or point KEDGE_K8S_BIN at a directory that holds them.';
  const check = (dir: string, source: string): string => {
    const missing = CONTROL_PLANE_BINARIES.filter((b) => !isExecutable(join(dir, b)));
    if (missing.length > 0) {
      throw new MissingBinariesError(`Kubernetes test binaries missing from ${dir} (${source}): ${missing.join(', ')}. ${hint}`);
    }
    return dir;
  };
  const fromEnv = process.env.KEDGE_K8S_BIN;
  if (fromEnv) return check(fromEnv, 'KEDGE_K8S_BIN');
  const cache = process.env.KEDGE_TESTENV_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kedge-testenv');
  const { k8s, kwok } = testenvVersions();
  const prefix = `k8s-v${k8s}-kwok-${kwok}-`;
  const candidates = existsSync(cache) ? readdirSync(cache).filter((d) => d.startsWith(prefix)).sort() : [];
  const goVersion = goEnv('GOVERSION');
  const preferred = goVersion ? candidates.filter((d) => d === prefix + goVersion) : [];
  for (const d of [...preferred, ...candidates]) {
    const dir = join(cache, d, 'bin');
    if (CONTROL_PLANE_BINARIES.every((b) => isExecutable(join(dir, b)))) return dir;
  }
  throw new MissingBinariesError(
    `Kubernetes test binaries not found: no complete ${join(cache, `${prefix}<go version>`, 'bin')} ` +
      `(needs ${CONTROL_PLANE_BINARIES.join(', ')}). ${hint}`,
  );
}

/**
 * The kwok module sources in the Go module cache (`kustomize/stage/**`, `kustomize/crd/**`). `testenv/build.sh`
 * put them there when it installed kwok; if the module cache was cleaned, `go mod download` (a few seconds, no
 * build) brings them back.
 */
export function kwokModuleDir(): string {
  const { kwok } = testenvVersions();
  const modCache = process.env.GOMODCACHE ?? goEnv('GOMODCACHE') ?? join(process.env.GOPATH ?? join(homedir(), 'go'), 'pkg', 'mod');
  const dir = join(modCache, 'sigs.k8s.io', `kwok@${kwok}`);
  if (existsSync(join(dir, 'kustomize', 'stage'))) return dir;
  try {
    const out = execFileSync('go', ['mod', 'download', '-json', `sigs.k8s.io/kwok@${kwok}`], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GOTOOLCHAIN: 'local' }, timeout: 120_000,
    });
    const parsed = JSON.parse(out) as { Dir?: string };
    if (parsed.Dir && existsSync(join(parsed.Dir, 'kustomize', 'stage'))) return parsed.Dir;
  } catch (err) {
    throw new MissingBinariesError(
      `kwok ${kwok} sources (its stage YAMLs) are not in the Go module cache (${dir}) and \`go mod download\` failed. ` +
        'Run `bash testenv/build.sh`.', { cause: err },
    );
  }
  throw new MissingBinariesError(`kwok ${kwok} sources not found under ${dir}. Run \`bash testenv/build.sh\`.`);
}
