import { describe, expect, it } from 'vitest';
import type { RouteMessage } from './message.js';
import { compileRoute, formatSink, normalizeSource, type CompiledRoute } from './route.js';

function route(text: string): CompiledRoute {
  const r = compileRoute(text);
  if (!r.ok) throw new Error(`${text}: ${r.error.message}`);
  return r.value;
}

function error(text: string): { message: string; line: number; column: number } {
  const r = compileRoute(text);
  if (r.ok) throw new Error(`expected ${text} not to compile`);
  return { message: r.error.message, line: r.error.line, column: r.error.column };
}

const leaf: RouteMessage = { source: { deviceId: 'leaf1' } };
const sensorOut: RouteMessage = { source: { deviceId: 'edge', moduleId: 'Sensor', output: 'temperature' } };
const sensorNoOutput: RouteMessage = { source: { deviceId: 'edge', moduleId: 'sensor' } };
const twin: RouteMessage = { source: { kind: 'twinChangeNotification', deviceId: 'edge' } };

describe('compileRoute grammar', () => {
  it('parses FROM … INTO with keywords in any case, SELECT *, blanks and comments', () => {
    for (const text of [
      'FROM /messages/* INTO $upstream',
      'from /messages/* into $UPSTREAM',
      '  SELECT * FROM /messages/* INTO $upstream  ',
      'FROM /messages/* /* all telemetry */ INTO $upstream',
    ]) {
      const r = route(text);
      expect(r.sink).toEqual({ kind: 'upstream' });
      expect(r.condition.text).toBe('true');
      expect(r.source.prefix).toBe('/messages/');
    }
  });

  it('keeps the condition text between WHERE and INTO', () => {
    const r = route("FROM /messages/modules/f/outputs/alerts WHERE   $body.temp > 30 AND level = 'hi'   INTO $upstream");
    expect(r.condition.text).toBe("$body.temp > 30 AND level = 'hi'");
  });

  it('parses BrokeredEndpoint sinks with either quote and any case', () => {
    expect(route('FROM /* INTO BrokeredEndpoint("/modules/filter/inputs/in1")').sink).toEqual({ kind: 'module', module: 'filter', input: 'in1' });
    expect(route("FROM /* INTO brokeredendpoint('modules/f/inputs/i/')").sink).toEqual({ kind: 'module', module: 'f', input: 'i' });
    expect(formatSink({ kind: 'module', module: 'f', input: 'i' })).toBe('BrokeredEndpoint("/modules/f/inputs/i")');
  });

  it.each([
    ['FORM /messages INTO $upstream', "Syntax error: expected 'FROM'", 1],
    ['SELECT FROM /messages INTO $upstream', "Syntax error: expected '*' after SELECT", 8],
    ['FROM INTO $upstream', "Syntax error: expected a source path starting with '/'", 6],
    ['FROM messages INTO $upstream', "Syntax error: expected a source path starting with '/'", 6],
    ['FROM /messages $upstream', "Syntax error: expected 'WHERE' or 'INTO'", 16],
    ['FROM /messages WHERE a == 1 INTO $upstream', 'Syntax error.', 25],
    ["FROM /messages WHERE a = 'x' INTO", 'Syntax error: expected a sink ($upstream or BrokeredEndpoint("/modules/<module>/inputs/<input>"))', 34],
    ['FROM /messages INTO upstream', "Syntax error: expected '(' after upstream", 29],
    ['FROM /messages INTO $downstream', "Unknown system endpoint '$downstream': only $upstream is supported", 21],
    ['FROM /messages INTO "/modules/a/inputs/b"', 'Syntax error: expected a sink ($upstream or BrokeredEndpoint("/modules/<module>/inputs/<input>"))', 21],
    ['FROM /messages INTO BrokeredEndpoint(/modules/a/inputs/b)', "Syntax error: expected a quoted endpoint address", 38],
    ['FROM /messages INTO BrokeredEndpoint("/modules/a/inputs/b"', "Syntax error: expected ')'", 59],
    ['FROM /messages INTO BrokeredEndpoint("/modules/a/inputs/b)', 'Syntax error: unterminated string', 38],
    ['FROM /messages INTO Endpoint("/modules/a/inputs/b")', "Unknown endpoint function 'Endpoint': only BrokeredEndpoint is supported", 21],
    ['FROM /messages INTO BrokeredEndpoint("/modules/a")', `Invalid BrokeredEndpoint address '/modules/a': expected "/modules/<module>/inputs/<input>"`, 38],
    ['FROM /messages INTO BrokeredEndpoint("//modules/a/inputs/b")', `Invalid BrokeredEndpoint address '//modules/a/inputs/b': expected "/modules/<module>/inputs/<input>"`, 38],
    ['FROM /messages INTO BrokeredEndpoint("/modules/a/outputs/b")', `Invalid BrokeredEndpoint address '/modules/a/outputs/b': expected "/modules/<module>/inputs/<input>"`, 38],
    ['FROM /messages INTO $upstream extra', 'Syntax error.', 31],
    ['FROM /messages WHERE as_number(t) > 1) INTO $upstream', "Syntax error: unmatched closing ')'", 38],
    ['FROM /messages WHERE temp > 30 INTO $upstream', "Invalid operands to binary operator '>': have 'string' and 'number', expected 'string' and 'string'", 27],
    ['', "Syntax error: expected 'FROM'", 1],
  ])('%s', (text, message, column) => {
    expect(error(text)).toMatchObject({ message, column });
  });

  it('reports positions inside the route text, across lines', () => {
    expect(error('FROM /messages\n  WHERE @ INTO $upstream')).toEqual({ message: "Syntax error: invalid symbol '@'", line: 2, column: 9 });
  });
});

describe('sources', () => {
  it.each([
    ['/*', '/'],
    ['/messages/*', '/messages/'],
    ['/messages/', '/messages/'],
    ['/messages/modules*', '/messages/modules/'],
    ['/messages/modules/m1/outputs/o1*', '/messages/modules/m1/outputs/o1/'],
    [' /twinChangeNotifications ', '/twinChangeNotifications/'],
  ])('normalizes %s to %s', (path, prefix) => expect(normalizeSource(path)).toBe(prefix));

  const cases: [string, RouteMessage, boolean][] = [
    ['/*', leaf, true],
    ['/*', twin, true],
    ['/messages/*', leaf, true],
    ['/messages/*', sensorOut, true],
    ['/messages/*', twin, false],
    ['/messages/modules/*', leaf, false],
    ['/messages/modules/*', sensorOut, true],
    ['/messages/modules/sensor/*', sensorOut, true], // case-insensitive
    ['/messages/modules/sensor/*', sensorNoOutput, true],
    ['/messages/modules/sens/*', sensorOut, false], // segment boundary
    ['/messages/modules/sensor/outputs/*', sensorOut, true],
    ['/messages/modules/sensor/outputs/*', sensorNoOutput, false],
    ['/messages/modules/sensor/outputs/temperature', sensorOut, true],
    ['/messages/modules/sensor/outputs/humidity', sensorOut, false],
    ['/twinChangeNotifications', twin, true],
    ['/twinChangeNotifications', leaf, false],
  ];
  it.each(cases)('FROM %s for %j → %s', (path, message, want) => {
    const r = route(`FROM ${path} INTO $upstream`);
    expect(r.matchesSource(message)).toBe(want);
    expect(r.matches(message)).toBe(want);
  });

  it('combines source and condition', () => {
    const r = route("FROM /messages/modules/sensor/* WHERE $connectionModuleId = 'sensor' INTO $upstream");
    expect(r.matches(sensorNoOutput)).toBe(true);
    expect(r.matches(sensorOut)).toBe(false); // module id 'Sensor': string comparison is ordinal
    expect(r.matches(leaf)).toBe(false);
  });

  it('enables twin_change_includes only for /twinChangeNotifications routes', () => {
    const text = 'WHERE twin_change_includes(properties.reported.x) INTO $upstream';
    expect(compileRoute(`FROM /twinChangeNotifications ${text}`).ok).toBe(true);
    expect(compileRoute(`FROM /* ${text}`).ok).toBe(false);
  });
});
