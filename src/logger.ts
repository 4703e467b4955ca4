import winston from 'winston';
import type { LogLevel } from './config';

export type Logger = winston.Logger;

export function createLogger(level: LogLevel, role: string): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { role, pid: process.pid },
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
  });
}

/** Turns anything thrown into an Error, so every catch can log `.message` safely. */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  return new Error(typeof e === 'string' ? e : JSON.stringify(e));
}
