import { describe, expect, it } from 'vitest';
import { lex, Tok } from './lexer.js';

const kinds = (text: string): string[] => lex(text).map((t) => `${t.kind}:${t.text}`);

describe('lex', () => {
  it('splits a route into keywords, paths and a sink', () => {
    expect(kinds('select * FROM /messages/* INTO $upstream')).toEqual([
      'Select:select', 'Mul:*', 'From:FROM', 'Div:/', 'Id:messages', 'Div:/', 'Mul:*', 'Into:INTO', 'SysProp:$upstream', 'Eof:<EOF>',
    ]);
  });

  it('takes the longest match, ties going to the earlier rule (ANTLR semantics)', () => {
    // '*' and '+' are ID characters, so glued arithmetic is one identifier, like in edgeHub.
    expect(kinds('3*4')).toEqual(['Id:3*4', 'Eof:<EOF>']);
    expect(kinds('3 * 4')).toEqual(['Integer:3', 'Mul:*', 'Integer:4', 'Eof:<EOF>']);
    // A leading minus belongs to a number literal.
    expect(kinds('3 -4')).toEqual(['Integer:3', 'Integer:-4', 'Eof:<EOF>']);
    expect(kinds('-x')).toEqual(['Id:-x', 'Eof:<EOF>']);
    expect(kinds('- (x)')).toEqual(['Minus:-', 'LParen:(', 'Id:x', 'RParen:)', 'Eof:<EOF>']);
    // Keywords win ties against ID but lose to longer IDs.
    expect(kinds('and andy AND Not')).toEqual(['And:and', 'Id:andy', 'And:AND', 'Not:Not', 'Eof:<EOF>']);
    // true/false/null/undefined are lower-case only.
    expect(kinds('true TRUE null Null')).toEqual(['True:true', 'Id:TRUE', 'Null:null', 'Id:Null', 'Eof:<EOF>']);
    // A single-quoted string glued to ID characters is an ID (quote is an ID character).
    expect(kinds("'a'b")).toEqual(["Id:'a'b", 'Eof:<EOF>']);
    expect(kinds('"a"b')).toEqual(['String:"a"', 'Id:b', 'Eof:<EOF>']);
  });

  it('reads number literals', () => {
    expect(kinds('12 0x1F 1.5 .5 1e3 -2.5e-3 e5')).toEqual([
      'Integer:12', 'Hex:0x1F', 'Real:1.5', 'Real:.5', 'Real:1e3', 'Real:-2.5e-3', 'Real:e5', 'Eof:<EOF>',
    ]);
  });

  it('reads operators', () => {
    expect(kinds('= != <> < <= > >= || ?? % /')).toEqual([
      'Eq:=', 'Ne1:!=', 'Ne2:<>', 'Lt:<', 'Le:<=', 'Gt:>', 'Ge:>=', 'Concat:||', 'Coalesce:??', 'Mod:%', 'Div:/', 'Eof:<EOF>',
    ]);
  });

  it('reads $-paths with brackets, escaped properties and strings with escapes', () => {
    expect(kinds('$body.a[0].b {$x}')).toEqual(['SysProp:$body.a[0].b', 'LBrace:{', 'SysProp:$x', 'RBrace:}', 'Eof:<EOF>']);
    expect(kinds(`'it\\'s' "\\u0041"`)).toEqual([`String:'it\\'s'`, 'String:"\\u0041"', 'Eof:<EOF>']);
    expect(kinds('"open')).toEqual(['UnterminatedString:"open', 'Eof:<EOF>']);
    expect(kinds('[1]')).toEqual(['QueryPath:[1]', 'Eof:<EOF>']);
  });

  it('skips comments only when they are closed', () => {
    expect(kinds('a /* c */ b')).toEqual(['Id:a', 'Id:b', 'Eof:<EOF>']);
    expect(kinds('/* x')).toEqual(['Div:/', 'Mul:*', 'Id:x', 'Eof:<EOF>']);
  });

  it('marks characters no rule accepts as unknown, with positions', () => {
    const toks = lex('a\n  @ ;');
    expect(toks.map((t) => [t.kind, t.line, t.column])).toEqual([
      [Tok.Id, 1, 1],
      [Tok.Unknown, 2, 3],
      [Tok.Unknown, 2, 5],
      [Tok.Eof, 2, 6],
    ]);
  });
});
