import { hostname } from 'node:os';
import { systemClock } from '../clock.ts';
import type { Config } from '../config.ts';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type Level = keyof typeof LEVELS;

export type PrimaryLog = Record<'info' | 'warn' | 'error', (fields: Record<string, unknown>, message: string) => void>;

/**
 * The primary serves no requests, so it has no Fastify (and no pino of its own: pino is not a
 * direct dependency); it writes the same JSON lines pino does, so one log pipeline reads both.
 */
export function createPrimaryLog(level: Config['logLevel'], write: (line: string) => void = (line) => process.stdout.write(line)): PrimaryLog {
  const threshold = level === 'silent' ? Infinity : LEVELS[level];
  const host = hostname();
  const at =
    (name: Level) =>
    (fields: Record<string, unknown>, message: string): void => {
      if (LEVELS[name] < threshold) return;
      write(`${JSON.stringify({ level: LEVELS[name], time: systemClock.now().getTime(), pid: process.pid, hostname: host, role: 'primary', ...fields, msg: message })}\n`);
    };
  return { info: at('info'), warn: at('warn'), error: at('error') };
}
