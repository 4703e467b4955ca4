import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';
import type { LogLevel } from './config';

/** Request-scoped context: every log line written while serving a request carries its request id. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

const withRequestId = winston.format((info) => {
  const ctx = requestContext.getStore();
  if (ctx && info.request_id === undefined) info.request_id = ctx.requestId;
  return info;
});

export type Logger = winston.Logger;

export function createLogger(level: LogLevel, role: string): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { role, pid: process.pid },
    format: winston.format.combine(withRequestId(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
  });
}

/** Turns anything thrown into an Error, so every catch can log `.message` safely. */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  return new Error(typeof e === 'string' ? e : JSON.stringify(e));
}
