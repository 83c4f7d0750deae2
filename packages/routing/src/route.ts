import type { Result } from '@kedge/contracts';
import { compileConditionTokens, guard, makeCondition, TRUE_CONDITION, type CompiledCondition } from './condition.js';
import { fail, RouteErrorCode, type RouteCompileError } from './errors.js';
import { syntaxError, unescape, unmatchedParen } from './grammar/condition-parser.js';
import { lex, Tok, type Token } from './grammar/lexer.js';
import { contextFor, type MessageContext, type RouteMessage } from './message.js';

/** Where a route sends messages: the cloud, or a module input through the edge hub's broker. */
export type RouteSink = { readonly kind: 'upstream' } | { readonly kind: 'module'; readonly module: string; readonly input: string };

/** A route's FROM clause. */
export interface RouteSource {
  /** The source as written, e.g. `/messages/modules/sensor/*`. */
  readonly path: string;
  /**
   * edgeHub's normalized form (`CustomMessageSource`): trailing `*` removed, trailing `/` collapsed, exactly one `/`
   * appended. A message matches when its own source path starts with this, ignoring case.
   */
  readonly prefix: string;
}

/** A compiled `FROM … [WHERE …] INTO …` route. */
export interface CompiledRoute {
  /** The route text as given. */
  readonly text: string;
  readonly source: RouteSource;
  readonly condition: CompiledCondition;
  readonly sink: RouteSink;
  /** True when the message comes from this route's source (prefix match, case-insensitive). */
  readonly matchesSource: (message: RouteMessage) => boolean;
  /** Source matches and the condition is `true`. */
  readonly matches: (message: RouteMessage) => boolean;
  /** {@link matches} against a prepared context. */
  readonly matchesIn: (ctx: MessageContext) => boolean;
}

/** edgeHub `CustomMessageSource.Create` normalization of a route source. */
export function normalizeSource(path: string): string {
  let s = path.trim().replace(/\*+$/, '');
  if (s.length > 1) s = s.replace(/\/+$/, '');
  return s.endsWith('/') ? s : `${s}/`;
}

/** A stable identity for a sink, used to deliver a message once per sink (edgeHub endpoint id). */
export function sinkKey(sink: RouteSink): string {
  return sink.kind === 'upstream' ? '$upstream' : `/modules/${sink.module}/inputs/${sink.input}`;
}

/** Renders a sink the way it is written in a route. */
export function formatSink(sink: RouteSink): string {
  return sink.kind === 'upstream' ? '$upstream' : `BrokeredEndpoint("${sinkKey(sink)}")`;
}

/**
 * Compiles an IoT Edge route: `[SELECT *] FROM <source> [WHERE <condition>] INTO <sink>`, keywords
 * case-insensitive. Sources are paths like `/messages/*`, `/messages/modules/<m>/outputs/<o>` or
 * `/twinChangeNotifications`; sinks are `$upstream` or `BrokeredEndpoint("/modules/<m>/inputs/<i>")`.
 *
 * Never throws: errors carry the line and column (in `text`) of the first offending token.
 */
export function compileRoute(text: string): Result<CompiledRoute, RouteCompileError> {
  return guard(() => parseRoute(text));
}

function expect(tokens: readonly Token[], i: number, kind: Tok, what: string): Token {
  const t = tokens[i] as Token;
  if (t.kind !== kind) {
    if (t.kind === Tok.Unknown || t.kind === Tok.UnterminatedString) syntaxError(t);
    fail(RouteErrorCode.Syntax, `Syntax error: expected ${what}`, t);
  }
  return t;
}

function parseRoute(text: string): CompiledRoute {
  const tokens = lex(text);
  let i = 0;
  if ((tokens[0] as Token).kind === Tok.Select) {
    expect(tokens, 1, Tok.Mul, "'*' after SELECT");
    i = 2;
  }
  expect(tokens, i++, Tok.From, "'FROM'");

  // source: ('/' ('*' | ID))+
  let path = '';
  do {
    expect(tokens, i++, Tok.Div, "a source path starting with '/'");
    const item = tokens[i] as Token;
    if (item.kind !== Tok.Mul && item.kind !== Tok.Id) {
      fail(RouteErrorCode.Source, `Syntax error: invalid source path segment '${item.kind === Tok.Eof ? '' : item.text}'`, item);
    }
    path += `/${item.text}`;
    i++;
  } while ((tokens[i] as Token).kind === Tok.Div);
  const prefix = normalizeSource(path);
  const twinChange = prefix.toLowerCase() === '/twinchangenotifications/';

  let condition = TRUE_CONDITION;
  const afterSource = tokens[i] as Token;
  if (afterSource.kind === Tok.Where) {
    const { run, next } = compileConditionTokens(tokens, i + 1, Tok.Into, { twinChange });
    const into = tokens[next] as Token;
    condition = makeCondition(text.slice(afterSource.end, into.start).trim(), run);
    i = next;
  } else if (afterSource.kind !== Tok.Into) {
    fail(RouteErrorCode.Syntax, "Syntax error: expected 'WHERE' or 'INTO'", afterSource);
  }
  expect(tokens, i++, Tok.Into, "'INTO'");
  const sink = parseSink(tokens, i);
  const end = tokens[sink.next] as Token;
  if (end.kind !== Tok.Eof) {
    if (end.kind === Tok.RParen) unmatchedParen(end);
    syntaxError(end);
  }
  const source: RouteSource = Object.freeze({ path, prefix });
  const lowerPrefix = prefix.toLowerCase();
  const run = condition.evaluateIn;
  const matchesIn = (ctx: MessageContext): boolean => ctx.sourcePath.startsWith(lowerPrefix) && run(ctx) === true;
  return Object.freeze({
    text,
    source,
    condition,
    sink: sink.sink,
    matchesSource: (m: RouteMessage) => contextFor(m).sourcePath.startsWith(lowerPrefix),
    matches: (m: RouteMessage) => matchesIn(contextFor(m)),
    matchesIn,
  });
}

function parseSink(tokens: readonly Token[], i: number): { sink: RouteSink; next: number } {
  const t = tokens[i] as Token;
  if (t.kind === Tok.SysProp) {
    // [IE EndpointFactory.CreateSystemEndpoint] only $upstream exists on Edge.
    if (t.text.toLowerCase() !== '$upstream') fail(RouteErrorCode.Sink, `Unknown system endpoint '${t.text}': only $upstream is supported`, t);
    return { sink: Object.freeze({ kind: 'upstream' }), next: i + 1 };
  }
  if (t.kind !== Tok.Id) {
    if (t.kind === Tok.Unknown || t.kind === Tok.UnterminatedString) syntaxError(t);
    fail(RouteErrorCode.Syntax, 'Syntax error: expected a sink ($upstream or BrokeredEndpoint("/modules/<module>/inputs/<input>"))', t);
  }
  expect(tokens, i + 1, Tok.LParen, `'(' after ${t.text}`);
  const address = expect(tokens, i + 2, Tok.String, 'a quoted endpoint address');
  expect(tokens, i + 3, Tok.RParen, "')'");
  if (t.text.toLowerCase() !== 'brokeredendpoint') fail(RouteErrorCode.Sink, `Unknown endpoint function '${t.text}': only BrokeredEndpoint is supported`, t);
  const value = unescape(address.text.slice(1, -1));
  // [IE EndpointFactory.CreateFunctionEndpoint] trims one leading and one trailing '/', then needs 4 segments.
  const trimmed = value.replace(/^\//, '').replace(/\/$/, '');
  const parts = trimmed.split('/');
  const [modules, module, inputs, input] = parts;
  if (parts.length !== 4 || modules?.toLowerCase() !== 'modules' || inputs?.toLowerCase() !== 'inputs' || !module || !input) {
    fail(RouteErrorCode.Sink, `Invalid BrokeredEndpoint address '${value}': expected "/modules/<module>/inputs/<input>"`, address);
  }
  return { sink: Object.freeze({ kind: 'module', module, input }), next: i + 4 };
}
