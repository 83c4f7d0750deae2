import { err, ok, type Result } from '@kedge/contracts';
import { compileExpression, toCondition, type ConditionScope } from './condition/compiler.js';
import type { TriBool } from './condition/values.js';
import { CompileFailure, compileError, RouteErrorCode, type RouteCompileError } from './errors.js';
import { ConditionParser, syntaxError, unmatchedParen } from './grammar/condition-parser.js';
import { lex, Tok, type Token } from './grammar/lexer.js';
import { contextFor, type MessageContext, type RouteMessage } from './message.js';

/**
 * A condition compiled once into closures. Evaluating it does no parsing; the message's body is parsed at most once
 * (lazily, cached per message object).
 */
export interface CompiledCondition {
  /** The condition text as written (`true` for a route without WHERE). */
  readonly text: string;
  /** Three-valued result: `true`, `false` or `undefined` (edgeHub `Bool.Undefined`). Only `true` routes. */
  readonly evaluate: (message: RouteMessage) => TriBool;
  /** `evaluate(message) === true`. */
  readonly matches: (message: RouteMessage) => boolean;
  /** Evaluates against a prepared message context (used by the evaluator to share one context across routes). */
  readonly evaluateIn: (ctx: MessageContext) => TriBool;
}

/** Options of {@link compileCondition}. */
export interface ConditionOptions {
  /**
   * Compile for a route whose source is `/twinChangeNotifications`, which enables `twin_change_includes`.
   * @default false
   */
  readonly twinChange?: boolean;
}

/** Builds the {@link CompiledCondition} object around a compiled closure. */
export function makeCondition(text: string, run: (ctx: MessageContext) => TriBool): CompiledCondition {
  return Object.freeze({
    text,
    evaluate: (m: RouteMessage) => run(contextFor(m)),
    matches: (m: RouteMessage) => run(contextFor(m)) === true,
    evaluateIn: run,
  });
}

/** The condition of a route without WHERE. */
export const TRUE_CONDITION: CompiledCondition = makeCondition('true', () => true);

/**
 * Compiles tokens `[from, …)` up to a token of kind `stop` (or end of input) into a condition closure. Throws
 * {@link CompileFailure} on errors (callers convert it to a `Result`).
 */
export function compileConditionTokens(tokens: readonly Token[], from: number, stop: Tok, scope: ConditionScope): { run: (ctx: MessageContext) => TriBool; next: number } {
  const first = tokens[from] as Token;
  // An empty condition is edgeHub's `EOF` alternative: undefined. Kedge also accepts it between WHERE and INTO
  // (edgeHub's route grammar does not; see docs/routing.md), so a condition means the same inside and outside a route.
  if (first.kind === stop) return { run: () => undefined, next: from };
  const parser = new ConditionParser(tokens, from);
  const expr = parser.parseExpression();
  const after = parser.peek();
  if (after.kind !== stop) {
    if (after.kind === Tok.RParen) unmatchedParen(after);
    syntaxError(after);
  }
  return { run: toCondition(compileExpression(expr, scope)), next: parser.position };
}

/**
 * Compiles a route condition (the text after WHERE). Never throws: syntax and type errors come back as a
 * {@link RouteCompileError} with the 1-based line and column of the first offending token. An empty condition
 * compiles to "always undefined", as in edgeHub.
 */
export function compileCondition(text: string, options: ConditionOptions = {}): Result<CompiledCondition, RouteCompileError> {
  return guard(() => {
    const tokens = lex(text);
    const { run } = compileConditionTokens(tokens, 0, Tok.Eof, { twinChange: options.twinChange ?? false });
    return makeCondition(text, run);
  });
}

/** Runs a compile step, turning {@link CompileFailure} (and any unexpected exception) into an error result. */
export function guard<T>(step: () => T): Result<T, RouteCompileError> {
  try {
    return ok(step());
  } catch (e) {
    if (e instanceof CompileFailure) return err(e.error);
    // Defensive: the compiler bounds recursion, but no input may ever make it throw.
    return err(compileError(RouteErrorCode.Syntax, `Cannot compile: ${e instanceof Error ? e.message : String(e)}`, { line: 1, column: 1 }));
  }
}
