import { isNewtonsoftDate, OBJECT, selectPath, selectSimple, type PathSegment } from './condition/json-path.js';

/** A JSON value as produced by `JSON.parse`. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * Where a message came from. Telemetry from a leaf device has no `moduleId`; a module message may name its output.
 * Reported-property updates routed by the edge hub are twin-change notifications.
 */
export type MessageSource =
  | { readonly kind?: 'telemetry'; readonly deviceId: string; readonly moduleId?: string; readonly output?: string }
  | { readonly kind: 'twinChangeNotification'; readonly deviceId: string; readonly moduleId?: string };

/**
 * A message as the route language sees it. Property bags are looked up case-insensitively; a `null` value is a
 * property that exists with no value (edgeHub's null string). `body` is either the raw bytes or an already parsed
 * JSON document; `$body` queries only work when the content type is `application/json` and the encoding is
 * `utf-8`, `utf-16` (LE) or `utf-32` (LE), as in edgeHub.
 */
export interface RouteMessage {
  readonly source: MessageSource;
  readonly properties?: Readonly<Record<string, string | null>>;
  readonly systemProperties?: Readonly<Record<string, string | null>>;
  /** Content type; falls back to the `contentType` system property. */
  readonly contentType?: string;
  /** Content encoding; falls back to the `contentEncoding` system property. */
  readonly contentEncoding?: string;
  readonly body?: Uint8Array | JsonValue;
}

/** The source path edgeHub assigns to a message (`RoutingMessageConverter`), with one trailing `/`. */
export function messageSourcePath(source: MessageSource): string {
  if (source.kind === 'twinChangeNotification') return '/twinChangeNotifications/';
  if (source.moduleId === undefined || source.moduleId === '') return '/messages/';
  if (source.output === undefined || source.output === '') return `/messages/modules/${source.moduleId}/`;
  return `/messages/modules/${source.moduleId}/outputs/${source.output}/`;
}

type BodyState = { readonly ok: true; readonly doc: object } | { readonly ok: false };
const BODY_ERROR: BodyState = { ok: false };

/**
 * Per-message evaluation state shared by every route evaluated against the message: lower-cased property bags and
 * the lazily decoded and parsed body. Built once per message object and cached (see {@link contextFor}), so the
 * body is parsed at most once however many routes look at it.
 */
export class MessageContext {
  readonly message: RouteMessage;
  /** Lower-cased source path, for case-insensitive prefix matching. */
  readonly sourcePath: string;
  #app: Map<string, string | null> | undefined;
  #sys: Map<string, string | null> | undefined;
  #body: BodyState | undefined;

  constructor(message: RouteMessage) {
    this.message = message;
    this.sourcePath = messageSourcePath(message.source).toLowerCase();
  }

  /** Application property by lower-cased name: the value, `null`, or `undefined` when absent. */
  app(lowerName: string): string | null | undefined {
    this.#app ??= lowerBag(this.message.properties);
    return this.#app.get(lowerName);
  }

  /** True when an application property with this lower-cased name exists (even with a null value). */
  hasApp(lowerName: string): boolean {
    this.#app ??= lowerBag(this.message.properties);
    return this.#app.has(lowerName);
  }

  /** System property by lower-cased name; derived properties (content type, connection ids) included. */
  sys(lowerName: string): string | null | undefined {
    this.#sys ??= this.#buildSys();
    return this.#sys.get(lowerName);
  }

  /**
   * `$body.<path>` as edgeHub's `BodyQuery`: `undefined` when the body cannot be queried (content type, encoding,
   * invalid JSON, not an object) or the path selects an object, array, several tokens or a date; `null` when
   * nothing matches; otherwise the leaf value.
   */
  body(path: readonly PathSegment[]): unknown {
    const state = this.#parsedBody();
    if (!state.ok) return undefined;
    const v = selectPath(state.doc, path);
    if (v === OBJECT) return undefined;
    if (typeof v === 'string' && isNewtonsoftDate(v)) return undefined;
    return v;
  }

  /** {@link body} for paths without wildcards (decided at compile time). */
  bodySimple(path: readonly PathSegment[]): unknown {
    const state = this.#body ?? this.#parsedBody();
    if (!state.ok) return undefined;
    const v = selectSimple(state.doc, path);
    if (v === OBJECT) return undefined;
    if (typeof v === 'string' && isNewtonsoftDate(v)) return undefined;
    return v;
  }

  /** `twin_change_includes(path)`: true when the path selects anything, false when nothing, undefined on errors. */
  bodyIncludes(path: readonly PathSegment[]): boolean | undefined {
    const state = this.#parsedBody();
    if (!state.ok) return undefined;
    return selectPath(state.doc, path) !== null;
  }

  #parsedBody(): BodyState {
    this.#body ??= parseBody(this.message, this.sys('contenttype'), this.sys('contentencoding'));
    return this.#body;
  }

  #buildSys(): Map<string, string | null> {
    const m = new Map<string, string | null>();
    const { source, contentType, contentEncoding } = this.message;
    m.set('connectiondeviceid', source.deviceId);
    if (source.moduleId !== undefined) m.set('connectionmoduleid', source.moduleId);
    if (source.kind !== 'twinChangeNotification' && source.output !== undefined) m.set('outputname', source.output);
    if (source.kind === 'twinChangeNotification') m.set('messagetype', 'twinChangeNotification');
    if (contentType !== undefined) m.set('contenttype', contentType);
    if (contentEncoding !== undefined) m.set('contentencoding', contentEncoding);
    for (const [k, v] of Object.entries(this.message.systemProperties ?? {})) m.set(k.toLowerCase(), v);
    return m;
  }
}

// One-entry memo: evaluating the same message object again (several routes, several conditions, the evaluator
// and then a condition) reuses its context, so the body is parsed once. A WeakMap would also do that, but V8's
// ephemeron tables made every short-lived message cost ~1 µs of GC, 10x the price of a small context.
let lastMessage: RouteMessage | undefined;
let lastContext: MessageContext | undefined;

/**
 * The {@link MessageContext} of a message object, reused while the same object is evaluated again (messages are
 * treated as immutable).
 */
export function contextFor(message: RouteMessage): MessageContext {
  if (message === lastMessage && lastContext !== undefined) return lastContext;
  const ctx = new MessageContext(message);
  lastMessage = message;
  lastContext = ctx;
  return ctx;
}

function lowerBag(bag: Readonly<Record<string, string | null>> | undefined): Map<string, string | null> {
  const m = new Map<string, string | null>();
  for (const [k, v] of Object.entries(bag ?? {})) m.set(k.toLowerCase(), v);
  return m;
}

const SUPPORTED_ENCODINGS = new Set(['utf-8', 'utf-16', 'utf-32']);

function parseBody(message: RouteMessage, contentType: string | null | undefined, encoding: string | null | undefined): BodyState {
  if (contentType?.toLowerCase() !== 'application/json') return BODY_ERROR;
  const enc = encoding?.toLowerCase();
  if (enc === undefined || !SUPPORTED_ENCODINGS.has(enc)) return BODY_ERROR;
  const body = message.body;
  let doc: unknown;
  if (body instanceof Uint8Array) {
    try {
      doc = JSON.parse(decode(body, enc));
    } catch {
      return BODY_ERROR;
    }
  } else {
    doc = body;
  }
  // JObject.Parse: the document must be an object.
  return doc !== null && typeof doc === 'object' && !Array.isArray(doc) ? { ok: true, doc } : BODY_ERROR;
}

const utf8 = new TextDecoder('utf-8');
const utf16 = new TextDecoder('utf-16le');

function decode(bytes: Uint8Array, encoding: string): string {
  if (encoding === 'utf-8') return utf8.decode(bytes);
  if (encoding === 'utf-16') return utf16.decode(bytes);
  let s = '';
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const cp = ((bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24)) >>> 0;
    s += cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : '\ufffd';
  }
  return s;
}
