/**
 * A compile error in a route, a condition or a twin query. Positions are 1-based and count UTF-16 code units, like
 * edgeHub's `ErrorRange` start; `line`/`column` locate the first offending token in the text that was compiled.
 */
export interface RouteCompileError {
  /** What is wrong, in the style of edgeHub's messages (`Syntax error: missing closing ')'`). */
  readonly message: string;
  /** 1-based line of the offending token. */
  readonly line: number;
  /** 1-based column of the offending token. */
  readonly column: number;
  /** Stable code from {@link RouteErrorCode}; clients branch on it, never on the message. */
  readonly code: RouteErrorCode;
}

/** Error codes of the route language, one catalogue for the package. */
export const RouteErrorCode = {
  Syntax: 'ROUTE_ERR_SYNTAX',
  Type: 'ROUTE_ERR_TYPE',
  UnknownFunction: 'ROUTE_ERR_UNKNOWN_FUNCTION',
  Arguments: 'ROUTE_ERR_ARGUMENTS',
  TooDeep: 'ROUTE_ERR_TOO_DEEP',
  Source: 'ROUTE_ERR_SOURCE',
  Sink: 'ROUTE_ERR_SINK',
} as const;
export type RouteErrorCode = (typeof RouteErrorCode)[keyof typeof RouteErrorCode];

/** Maximum depth of an expression tree (operator chains included); bounds compile and evaluation recursion. */
export const MAX_EXPRESSION_DEPTH = 1000;

/** Maximum nesting of parentheses, prefix operators and calls; bounds parser recursion. */
export const MAX_NESTING = 256;

/** A position inside a text being compiled. */
export interface Position {
  readonly line: number;
  readonly column: number;
}

/** Builds a {@link RouteCompileError}. */
export function compileError(code: RouteErrorCode, message: string, at: Position): RouteCompileError {
  return { code, message, line: at.line, column: at.column };
}

/**
 * Thrown only inside the compiler to unwind to its entry point, where it becomes a `Result`. It never escapes a
 * public function.
 */
export class CompileFailure extends Error {
  readonly error: RouteCompileError;
  constructor(error: RouteCompileError) {
    super(error.message);
    this.name = 'CompileFailure';
    this.error = error;
  }
}

/** Throws a {@link CompileFailure}; used by the parsers and the type checker. */
export function fail(code: RouteErrorCode, message: string, at: Position): never {
  throw new CompileFailure(compileError(code, message, at));
}
