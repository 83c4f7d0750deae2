import type { TelemetryMessage } from '@kedge/hub';
import { cellText } from '../../output.js';

const DIM = '\u001b[2m';
const CYAN = '\u001b[36m';
const YELLOW = '\u001b[33m';
const RESET = '\u001b[0m';

/**
 * One telemetry message as one readable line for `kedge monitor`: enqueued time (UTC, to the millisecond), the
 * sender (`device` or `device/module`), the body (compact JSON, or its text), then the application properties as
 * `key=value`. Every part is sanitised (`cellText`): bodies and properties come from devices, and an escape
 * sequence in one must not drive the terminal.
 */
export function telemetryLine(m: TelemetryMessage, color: boolean): string {
  const paint = (code: string, text: string): string => (color ? `${code}${text}${RESET}` : text);
  const time = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(m.enqueuedTime)?.[1] ?? m.enqueuedTime;
  const from = m.moduleId ? `${m.deviceId}/${m.moduleId}` : m.deviceId;
  const body = typeof m.body === 'string' ? m.body : JSON.stringify(m.body);
  const props = Object.entries(m.properties ?? {}).map(([k, v]) => `${k}=${v}`);
  return `${paint(DIM, cellText(time))}  ${paint(CYAN, cellText(from))}  ${cellText(body)}${props.length > 0 ? `  ${paint(YELLOW, cellText(props.join(' ')))}` : ''}\n`;
}
