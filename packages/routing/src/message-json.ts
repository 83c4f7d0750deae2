import { err, ok, type Issue, type Result } from '@kedge/contracts';
import type { JsonValue, MessageSource, RouteMessage } from './message.js';

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A property bag: user keys (`__proto__`, `constructor` are ordinary property names), so a null-prototype object. */
function bag(v: unknown, path: string, issues: Issue[]): Record<string, string | null> {
  const out = Object.create(null) as Record<string, string | null>;
  if (v === undefined) return out;
  if (!isObject(v)) {
    issues.push({ path, message: 'must be an object of string values' });
    return out;
  }
  for (const [k, x] of Object.entries(v)) {
    if (x === null || typeof x === 'string') out[k] = x;
    else if (typeof x === 'number' || typeof x === 'boolean') out[k] = String(x); // property values travel as text
    else issues.push({ path: `${path}.${k}`, message: 'must be a string or null' });
  }
  return out;
}

function optionalString(v: unknown, path: string, issues: Issue[]): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  issues.push({ path, message: 'must be a string' });
  return undefined;
}

/**
 * Builds a {@link RouteMessage} from the JSON shape `kedge route test --message` reads:
 * `{source: {deviceId, moduleId?, output?}, properties?, systemProperties?, contentType?, contentEncoding?, body?,
 * bodyBase64?}`. No `moduleId` means leaf-device telemetry; `systemProperties.messageType = "twinChangeNotification"`
 * (or `source.kind`) makes a twin-change notification. `body` is a JSON value (kept parsed) or a string (its UTF-8
 * bytes); `bodyBase64` gives the exact bytes and wins over `body`. `contentType`/`contentEncoding` default to the
 * system properties of those names. Property values that are numbers or booleans are read as their text.
 */
export function messageFromJson(input: unknown): Result<RouteMessage, Issue[]> {
  const issues: Issue[] = [];
  if (!isObject(input)) return err([{ path: '$', message: 'message must be a JSON object' }]);
  const properties = bag(input['properties'], '$.properties', issues);
  const systemProperties = bag(input['systemProperties'], '$.systemProperties', issues);
  const src = input['source'] ?? {};
  let source: MessageSource = { deviceId: '' };
  if (!isObject(src)) issues.push({ path: '$.source', message: 'must be an object like {"deviceId": "d1", "moduleId": "m", "output": "o"}' });
  else {
    const deviceId = optionalString(src['deviceId'], '$.source.deviceId', issues) ?? '';
    const moduleId = optionalString(src['moduleId'], '$.source.moduleId', issues);
    const output = optionalString(src['output'], '$.source.output', issues);
    const twin = src['kind'] === 'twinChangeNotification' || systemProperties['messageType'] === 'twinChangeNotification';
    source = twin
      ? { kind: 'twinChangeNotification', deviceId, ...(moduleId !== undefined ? { moduleId } : {}) }
      : { deviceId, ...(moduleId !== undefined ? { moduleId } : {}), ...(output !== undefined ? { output } : {}) };
  }
  const contentType = optionalString(input['contentType'], '$.contentType', issues) ?? systemProperties['contentType'] ?? undefined;
  const contentEncoding = optionalString(input['contentEncoding'], '$.contentEncoding', issues) ?? systemProperties['contentEncoding'] ?? undefined;
  let body: Uint8Array | JsonValue;
  const b64 = input['bodyBase64'];
  if (typeof b64 === 'string') {
    body = new Uint8Array(0);
    try {
      const clean = b64.replace(/\s/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw new Error('not base64');
      body = Uint8Array.from(atob(clean), (ch) => ch.charCodeAt(0));
    } catch {
      issues.push({ path: '$.bodyBase64', message: 'must be base64' });
    }
  } else if (b64 !== undefined && b64 !== null) {
    issues.push({ path: '$.bodyBase64', message: 'must be a base64 string' });
    body = new Uint8Array(0);
  } else {
    const raw = input['body'];
    body = typeof raw === 'string' ? new TextEncoder().encode(raw) : raw === undefined || raw === null ? new Uint8Array(0) : (raw as JsonValue);
  }
  if (issues.length > 0) return err(issues);
  return ok({
    source,
    properties,
    systemProperties,
    ...(contentType !== undefined ? { contentType } : {}),
    ...(contentEncoding !== undefined ? { contentEncoding } : {}),
    body,
  });
}
