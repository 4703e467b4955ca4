import { useEffect, useRef, useState } from 'preact/hooks';
import { apiKey, onUnauthorized, setApiKey } from './api';
import { href, useRoute, type Route } from './hooks';
import { EventPageView } from './pages/event';
import { EventsPage } from './pages/events';
import { OverviewPage } from './pages/overview';
import { TriggerPageView } from './pages/trigger';
import { TriggerFormPage } from './pages/trigger-form';
import { TriggersPage } from './pages/triggers';
import { ZonePicker, ZoneProvider } from './zone';

const NAV: Array<[string, string]> = [
  ['/', 'Overview'],
  ['/triggers', 'Triggers'],
  ['/events', 'Events'],
  ['/failed', 'Failed'],
];

function section(path: string): string {
  if (path.startsWith('/triggers')) return '/triggers';
  if (path.startsWith('/events')) return '/events';
  if (path.startsWith('/failed')) return '/failed';
  return '/';
}

function Page({ route }: { route: Route }) {
  const parts = route.path.split('/').filter(Boolean);
  const key = `${route.path}?${route.params.toString()}`;
  if (parts[0] === 'triggers' && parts[1] === 'new') return <TriggerFormPage key={key} />;
  if (parts[0] === 'triggers' && parts[1] && parts[2] === 'edit') return <TriggerFormPage key={key} id={parts[1]} />;
  if (parts[0] === 'triggers' && parts[1]) return <TriggerPageView key={key} id={parts[1]} />;
  if (parts[0] === 'triggers') return <TriggersPage key={key} route={route} />;
  if (parts[0] === 'events' && parts[1]) return <EventPageView key={key} id={parts[1]} />;
  if (parts[0] === 'events') return <EventsPage key={key} route={route} />;
  if (parts[0] === 'failed') return <EventsPage key={key} route={route} failedOnly />;
  if (parts.length === 0) return <OverviewPage key={key} />;
  return (
    <>
      <h1>Not found</h1>
      <p>
        Nothing here. <a href={href('/')}>Overview</a>
      </p>
    </>
  );
}

/** Asked for when the API answers 401: a password field labelled "API key"; the key stays in sessionStorage. */
function KeyForm({ refused, onKey }: { refused: boolean; onKey: (key: string) => void }) {
  const [value, setValue] = useState('');
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => field.current?.focus(), []);
  return (
    <form
      class="key-form"
      aria-labelledby="key-form-title"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) onKey(value.trim());
      }}
    >
      <h1 id="key-form-title">API key needed</h1>
      <p>This platform requires an API key. It is kept in this browser tab only (sessionStorage) and sent as a Bearer token.</p>
      {refused ? (
        <p class="notice notice-error" role="alert">
          The API refused that key. Check it and try again.
        </p>
      ) : null}
      <div class="field">
        <label for="api-key">API key</label>
        <input
          id="api-key"
          ref={field}
          type="password"
          autoComplete="current-password"
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
      </div>
      <div class="actions">
        <button type="submit" class="button-primary">
          Use this key
        </button>
      </div>
    </form>
  );
}

export function App() {
  const route = useRoute();
  const [auth, setAuth] = useState<{ needed: boolean; refused: boolean }>({ needed: false, refused: false });
  // Bumped when a key is entered: the page remounts and loads again with it.
  const [epoch, setEpoch] = useState(0);
  const main = useRef<HTMLElement>(null);

  useEffect(() => onUnauthorized((hadKey) => setAuth({ needed: true, refused: hadKey })), []);
  // A new view moves focus to its content (as a page load would), so keyboard and screen-reader users start there.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [route.path]);

  const current = section(route.path);
  return (
    <ZoneProvider>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href('/')}>
          Event triggers
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([path, label]) => (
              <li key={path}>
                <a href={href(path)} aria-current={current === path ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <ZonePicker />
        {apiKey() && !auth.needed ? <span class="muted key-set">API key set</span> : null}
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {auth.needed ? (
          <KeyForm
            refused={auth.refused}
            onKey={(key) => {
              setApiKey(key);
              setAuth({ needed: false, refused: false });
              setEpoch((n) => n + 1);
            }}
          />
        ) : (
          <Page key={epoch} route={route} />
        )}
      </main>
    </ZoneProvider>
  );
}
