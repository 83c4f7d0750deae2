import type { Position } from '../errors.js';

/** Binary operators of the condition language, tightest first in {@link BINARY_LEVELS}. */
export const BinaryOp = {
  Mul: '*',
  Div: '/',
  Mod: '%',
  Add: '+',
  Sub: '-',
  Concat: '||',
  Lt: '<',
  Le: '<=',
  Gt: '>',
  Ge: '>=',
  Eq: '=',
  Ne: '!=',
  And: 'AND',
  Or: 'OR',
  Coalesce: '??',
} as const;
export type BinaryOp = (typeof BinaryOp)[keyof typeof BinaryOp];

/** A literal value as written. `number` is `undefined`-typed when .NET would fail to parse it (edgeHub quirk). */
export type LiteralNode =
  | { readonly kind: 'number'; readonly value: number; readonly at: Position }
  | { readonly kind: 'string'; readonly value: string; readonly at: Position }
  | { readonly kind: 'bool'; readonly value: boolean; readonly at: Position }
  | { readonly kind: 'null'; readonly at: Position }
  | { readonly kind: 'undefined'; readonly at: Position };

/** Parsed condition expression. `at` is the position of the node's significant token (operator, name, literal). */
export type ExprNode =
  | LiteralNode
  | { readonly kind: 'appProperty'; readonly name: string; readonly at: Position }
  | { readonly kind: 'sysProperty'; readonly text: string; readonly escaped: boolean; readonly at: Position }
  | {
      readonly kind: 'call';
      readonly name: string;
      readonly args: readonly ExprNode[];
      /** The argument list's tokens concatenated without blanks (what `twin_change_includes` reads). */
      readonly argText: string;
      readonly at: Position;
    }
  | { readonly kind: 'negate'; readonly operand: ExprNode; readonly at: Position }
  | { readonly kind: 'not'; readonly operand: ExprNode; readonly op: string; readonly at: Position }
  | {
      readonly kind: 'binary';
      readonly op: BinaryOp;
      /** The operator as written (`<>`, `and`, …), for messages. */
      readonly opText: string;
      readonly left: ExprNode;
      readonly right: ExprNode;
      readonly at: Position;
    };
