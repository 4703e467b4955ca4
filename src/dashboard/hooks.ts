import { useEffect, useRef, useState } from 'preact/hooks';
import { isUnauthorized } from './api';

/** How often a visible page refreshes itself. */
export const REFRESH_MS = 5000;

export interface Route {
  /** The path after `#`, such as /triggers/3f1c…; `/` for the overview. */
  path: string;
  params: URLSearchParams;
}

function currentRoute(): Route {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, search] = raw.split('?', 2) as [string, string | undefined];
  return { path: path || '/', params: new URLSearchParams(search ?? '') };
}

/** Hash routing: the server serves one index.html, and every view has a URL that can be shared or reloaded. */
export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function href(path: string, params: Record<string, string | number | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

export function navigate(path: string, params: Record<string, string | number | undefined | null> = {}): void {
  window.location.hash = href(path, params).slice(1);
}

export interface Polled<T> {
  data: T | undefined;
  error: unknown;
  /** Load again now (after an action), then go on polling. */
  reload: () => void;
}

/**
 * Loads at once, then again every `intervalMs` while the tab is visible (document.visibilityState);
 * a hidden tab stops polling and catches up as soon as it is shown again. One request at a time: the next
 * one is timed from the end of the previous. A 401 stops the loop (the app asks for a key and remounts).
 * The data of the previous load stays shown while a new one runs, and when one fails.
 */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], intervalMs = REFRESH_MS): Polled<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown }>({ data: undefined, error: null });
  const loadRef = useRef(load);
  loadRef.current = load;
  const reloadRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let seq = 0;
    const run = async () => {
      clearTimeout(timer);
      if (cancelled || document.visibilityState === 'hidden') return;
      const mine = ++seq;
      try {
        const data = await loadRef.current();
        if (cancelled || mine !== seq) return;
        setState({ data, error: null });
      } catch (e) {
        if (cancelled || mine !== seq) return;
        setState((s) => ({ data: s.data, error: e }));
        if (isUnauthorized(e)) return;
      }
      timer = setTimeout(() => void run(), intervalMs);
    };
    const onVisibility = () => {
      if (document.visibilityState === 'visible') void run();
      else clearTimeout(timer);
    };
    reloadRef.current = () => void run();
    document.addEventListener('visibilitychange', onVisibility);
    void run();
    return () => {
      cancelled = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
    // The caller names what `load` depends on; `load` itself is read from the ref at each run.
  }, deps);

  return { data: state.data, error: state.error, reload: () => reloadRef.current() };
}

/** `value`, once it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
