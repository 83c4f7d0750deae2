import type { Position } from '../errors.js';

/**
 * Token kinds of edgeHub's route/condition lexer (`GrammarLexer.g4`). The declaration order is the ANTLR rule
 * order, which breaks ties between equally long matches.
 */
export const Tok = {
  LBrace: 'LBrace',
  RBrace: 'RBrace',
  Select: 'Select',
  From: 'From',
  Where: 'Where',
  Into: 'Into',
  String: 'String',
  UnterminatedString: 'UnterminatedString',
  Integer: 'Integer',
  Hex: 'Hex',
  Real: 'Real',
  True: 'True',
  False: 'False',
  Null: 'Null',
  Undefined: 'Undefined',
  LParen: 'LParen',
  RParen: 'RParen',
  Comma: 'Comma',
  Plus: 'Plus',
  Minus: 'Minus',
  Mul: 'Mul',
  Div: 'Div',
  Mod: 'Mod',
  And: 'And',
  Or: 'Or',
  Not: 'Not',
  Eq: 'Eq',
  Ne1: 'Ne1',
  Ne2: 'Ne2',
  Le: 'Le',
  Ge: 'Ge',
  Gt: 'Gt',
  Lt: 'Lt',
  Concat: 'Concat',
  Coalesce: 'Coalesce',
  SysProp: 'SysProp',
  Id: 'Id',
  QueryPath: 'QueryPath',
  Unknown: 'Unknown',
  Eof: 'Eof',
} as const;
export type Tok = (typeof Tok)[keyof typeof Tok];

/** One token: its kind, its exact text and where it starts. */
export interface Token extends Position {
  readonly kind: Tok;
  readonly text: string;
  /** Offset of the first character in the lexed text. */
  readonly start: number;
  /** Offset just past the last character. */
  readonly end: number;
}

// Characters that may not appear in ID (`ID_CHARS`) or in `$`-paths (`QUERY_PATH_CHARS`, which allows `[` `]`).
const NOT_QUERY_PATH = new Set(['(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '?', '=', '{', '}', ' ', '\t', '\n', '\r']);
const isQueryPathChar = (c: string): boolean => !NOT_QUERY_PATH.has(c);
const isIdChar = (c: string): boolean => c !== '[' && c !== ']' && !NOT_QUERY_PATH.has(c);
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isHex = (c: string | undefined): boolean =>
  c !== undefined && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
const isWs = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';

// Fixed tokens in rule order. Keywords are case-insensitive, literals `true false null undefined` are not.
const KEYWORDS: readonly (readonly [Tok, string, boolean])[] = [
  [Tok.Select, 'select', true],
  [Tok.From, 'from', true],
  [Tok.Where, 'where', true],
  [Tok.Into, 'into', true],
];
const LITERAL_WORDS: readonly (readonly [Tok, string])[] = [
  [Tok.True, 'true'],
  [Tok.False, 'false'],
  [Tok.Null, 'null'],
  [Tok.Undefined, 'undefined'],
];
const OPERATORS: readonly (readonly [Tok, string, boolean])[] = [
  [Tok.LParen, '(', false],
  [Tok.RParen, ')', false],
  [Tok.Comma, ',', false],
  [Tok.Plus, '+', false],
  [Tok.Minus, '-', false],
  [Tok.Mul, '*', false],
  [Tok.Div, '/', false],
  [Tok.Mod, '%', false],
  [Tok.And, 'and', true],
  [Tok.Or, 'or', true],
  [Tok.Not, 'not', true],
  [Tok.Eq, '=', false],
  [Tok.Ne1, '!=', false],
  [Tok.Ne2, '<>', false],
  [Tok.Le, '<=', false],
  [Tok.Ge, '>=', false],
  [Tok.Gt, '>', false],
  [Tok.Lt, '<', false],
  [Tok.Concat, '||', false],
  [Tok.Coalesce, '??', false],
];

/**
 * Splits text into tokens the way ANTLR's lexer does for `GrammarLexer.g4`: at each position the longest match
 * wins and ties go to the rule declared first. This reproduces edgeHub's quirks on purpose, e.g. `3*4` is one ID
 * (`*` is an ID character) and `-1` is a number literal. Whitespace and `/* … *\/` comments are skipped.
 *
 * Runs in time linear in the input: every candidate scan is bounded by the length of the token finally taken,
 * except the comment search, which is answered from a precomputed index.
 */
export function lex(text: string): Token[] {
  const tokens: Token[] = [];
  const lastCommentEnd = text.lastIndexOf('*/');
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (isWs(c)) {
      if (c === '\n') {
        line++;
        lineStart = i + 1;
      }
      i++;
      continue;
    }
    // COMMENT: '/*' .*? '*/' beats OP_DIV whenever a terminator exists after it.
    if (c === '/' && text[i + 1] === '*' && lastCommentEnd >= i + 2) {
      const close = text.indexOf('*/', i + 2);
      const end = close + 2;
      for (let k = i; k < end; k++) {
        if (text[k] === '\n') {
          line++;
          lineStart = k + 1;
        }
      }
      i = end;
      continue;
    }
    let bestKind: Tok = Tok.Unknown;
    let bestLen = 1;
    const offer = (kind: Tok, len: number): void => {
      if (len > bestLen || (len === bestLen && bestKind === Tok.Unknown)) {
        bestKind = kind;
        bestLen = len;
      }
    };
    // Offers are made in rule order and only a strictly longer match replaces an earlier one.
    if (c === '{') offer(Tok.LBrace, 1);
    else if (c === '}') offer(Tok.RBrace, 1);
    for (const [kind, word] of KEYWORDS) {
      if (matchesWord(text, i, word, true)) offer(kind, word.length);
    }
    if (c === '"' || c === "'") {
      const [len, closed] = scanString(text, i);
      offer(closed ? Tok.String : Tok.UnterminatedString, len);
    }
    const intLen = scanInteger(text, i);
    if (intLen > 0) offer(Tok.Integer, intLen);
    if (c === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X') && isHex(text[i + 2])) {
      let j = i + 2;
      while (isHex(text[j])) j++;
      offer(Tok.Hex, j - i);
    }
    const realLen = scanReal(text, i);
    if (realLen > 0) offer(Tok.Real, realLen);
    for (const [kind, word] of LITERAL_WORDS) {
      if (matchesWord(text, i, word, false)) offer(kind, word.length);
    }
    for (const [kind, op, ci] of OPERATORS) {
      if (matchesWord(text, i, op, ci)) offer(kind, op.length);
    }
    if (c === '$' && i + 1 < n && isQueryPathChar(text[i + 1] as string)) {
      let j = i + 1;
      while (j < n && isQueryPathChar(text[j] as string)) j++;
      offer(Tok.SysProp, j - i);
    }
    if (isIdChar(c)) {
      let j = i;
      while (j < n && isIdChar(text[j] as string)) j++;
      offer(Tok.Id, j - i);
    }
    if (isQueryPathChar(c)) {
      let j = i;
      while (j < n && isQueryPathChar(text[j] as string)) j++;
      offer(Tok.QueryPath, j - i);
    }
    const tokenText = text.slice(i, i + bestLen);
    tokens.push({ kind: bestKind, text: tokenText, start: i, end: i + bestLen, line, column: i - lineStart + 1 });
    // Multi-line tokens (strings) move the line counter too.
    for (let k = i; k < i + bestLen; k++) {
      if (text[k] === '\n') {
        line++;
        lineStart = k + 1;
      }
    }
    i += bestLen;
  }
  tokens.push({ kind: Tok.Eof, text: '<EOF>', start: n, end: n, line, column: n - lineStart + 1 });
  return tokens;
}

function matchesWord(text: string, i: number, word: string, caseInsensitive: boolean): boolean {
  if (i + word.length > text.length) return false;
  const slice = text.slice(i, i + word.length);
  return caseInsensitive ? slice.toLowerCase() === word : slice === word;
}

/** STRING / UNTERMINATED_STRING: returns the match length and whether the closing quote was found. */
function scanString(text: string, i: number): [number, boolean] {
  const quote = text[i];
  let j = i + 1;
  while (j < text.length) {
    const c = text[j];
    if (c === quote) return [j + 1 - i, true];
    if (c === '\\') {
      const e = text[j + 1];
      if (e === '"' || e === "'" || e === '\\') {
        j += 2;
        continue;
      }
      if (e === 'u' && isHex(text[j + 2]) && isHex(text[j + 3]) && isHex(text[j + 4]) && isHex(text[j + 5])) {
        j += 6;
        continue;
      }
      // An invalid escape ends the (unterminated) string before the backslash.
      return [j - i, false];
    }
    j++;
  }
  return [j - i, false];
}

/** INTEGER_LITERAL: '-'? [0-9]+ */
function scanInteger(text: string, i: number): number {
  let j = text[i] === '-' ? i + 1 : i;
  const digitsStart = j;
  while (isDigit(text[j])) j++;
  return j > digitsStart ? j - i : 0;
}

/** REAL_LITERAL: '-'? [0-9]* '.' [0-9]+ EXP? | '-'? [0-9]* EXP, with EXP = [Ee] [+-]? [0-9]+ */
function scanReal(text: string, i: number): number {
  let j = text[i] === '-' ? i + 1 : i;
  while (isDigit(text[j])) j++;
  let best = 0;
  if (text[j] === '.' && isDigit(text[j + 1])) {
    let k = j + 1;
    while (isDigit(text[k])) k++;
    best = k - i;
    const e = scanExp(text, k);
    if (e > 0) best = k + e - i;
  }
  const e = scanExp(text, j);
  if (e > 0) best = Math.max(best, j + e - i);
  return best;
}

function scanExp(text: string, i: number): number {
  if (text[i] !== 'e' && text[i] !== 'E') return 0;
  let j = i + 1;
  if (text[j] === '+' || text[j] === '-') j++;
  const digitsStart = j;
  while (isDigit(text[j])) j++;
  return j > digitsStart ? j - i : 0;
}
