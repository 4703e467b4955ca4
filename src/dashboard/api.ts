/**
 * The dashboard's only way to the API: same origin, JSON in and out, the API key (when one was entered)
 * as `Authorization: Bearer`, kept in sessionStorage so it lasts as long as the tab. A 401 tells the app
 * to ask for a key (again).
 */
import type { Problem } from './types';

const KEY_STORAGE = 'etp.apiKey';
const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail ?? problem.title ?? `The API answered ${status}`);
    this.name = 'ApiError';
  }
}

export function isUnauthorized(e: unknown): boolean {
  return e instanceof ApiError && e.status === 401;
}

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the key lives in memory for this page only
  }
}

let memoryKey: string | null = storage()?.getItem(KEY_STORAGE) ?? null;

export function apiKey(): string | null {
  return memoryKey;
}

export function setApiKey(key: string): void {
  memoryKey = key;
  storage()?.setItem(KEY_STORAGE, key);
}

type UnauthorizedListener = (hadKey: boolean) => void;
const listeners = new Set<UnauthorizedListener>();

/** Called on every 401 with whether a key was sent (so the form can say the key was refused). */
export function onUnauthorized(l: UnauthorizedListener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export async function api<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const h: Record<string, string> = { Accept: 'application/json', ...headers };
  const key = memoryKey;
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  const data: unknown = /json/.test(type) ? await res.json() : { detail: await res.text() };
  if (res.status === 401) listeners.forEach((l) => l(key !== null));
  if (!res.ok) throw new ApiError(res.status, (data ?? {}) as Problem);
  return data as T;
}

/** A query string from the defined, non-empty values (arrays repeat the name). */
export function query(params: Record<string, string | number | boolean | string[] | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A random Idempotency-Key: a repeated click sends the same key and replays once. */
export function newKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
