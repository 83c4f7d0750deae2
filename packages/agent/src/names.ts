import { createHash } from 'node:crypto';

/** Labels and annotations Kedge puts on what it creates. */
export const Labels = {
  managedBy: 'app.kubernetes.io/managed-by',
  name: 'app.kubernetes.io/name',
  partOf: 'app.kubernetes.io/part-of',
  deployment: 'kedge.io/deployment',
  module: 'kedge.io/module',
  volume: 'kedge.io/volume',
  registry: 'kedge.io/registry',
} as const;

export const Annotations = {
  moduleName: 'kedge.io/module-name',
  deviceId: 'kedge.io/device-id',
  moduleVersion: 'kedge.io/module-version',
  restartPolicy: 'kedge.io/restart-policy',
  volumeName: 'kedge.io/volume-name',
  simulate: 'kedge.io/simulate',
} as const;

/** Value of `app.kubernetes.io/managed-by` on everything the controller creates. */
export const MANAGED_BY = 'kedge-agent';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** True if `s` is a valid RFC 1123 DNS label (lowercase, ≤ 63). */
export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

function hash8(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/**
 * A stable DNS-1123 label for a name that may contain characters Kubernetes does not allow (IoT Edge module ids
 * allow `_`, `.`, upper case, …). A name that is already a valid label is kept as it is, so `kubectl get deploy
 * filter` works; any other is sanitized and suffixed with an 8-character hash of the original, so that `My_Module`
 * and `mymodule` never map to the same object (cdk8s `Names.toDnsLabel`).
 */
export function toDnsLabel(name: string, maxLength = 63): string {
  if (isDnsLabel(name) && name.length <= maxLength) return name;
  const h = hash8(name);
  let base = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-').replace(/^-+|-+$/g, '');
  base = base.slice(0, maxLength - 9).replace(/-+$/g, '');
  return base === '' ? `m-${h}` : `${base}-${h}`;
}

/** A label value (≤ 63 chars, alphanumeric at both ends) for an arbitrary string, hashed when it must change. */
export function toLabelValue(value: string): string {
  if (value.length <= 63 && /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/.test(value)) return value;
  const h = hash8(value);
  const base = value.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '').slice(0, 54).replace(/[^A-Za-z0-9]+$/g, '');
  return base === '' ? h : `${base}-${h}`;
}
