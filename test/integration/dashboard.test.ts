import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { Receiver, type Received } from '../helpers/receiver';
import { until } from '../helpers/until';
import { count } from '../helpers/fixtures';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { DASHBOARD_DIR } from '../../src/api/dashboard';
import { insertFireLags } from '../../src/db/fire-lags';

/*
 * Issue 12 in a real browser: Debian's Chromium driven by playwright-core, against the real stack in this
 * process (api + relay + worker on a database and topics of its own, Kafka, local HTTP receivers).
 *
 * The browser: /usr/bin/chromium (CHROMIUM_PATH overrides), installed with apt-get when missing and this
 * runs as root. With CI=true these tests must run: no browser is a failure. Elsewhere a missing browser is
 * a skip, printed with its reason.
 *
 * UPDATE_SCREENSHOTS=1 rewrites docs/dashboard-overview.png and docs/dashboard-trigger.png; a plain run
 * takes the screenshots in memory only and writes nothing into the tree.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const KEY = 'dashboard-test-key-7f3a9c1e';
const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';
const XSS_NAME = '<img src=x onerror=alert(1)>';
const quiet = createLogger('error', 'test');

/** The browser, or why there is none. Installs Debian's chromium when missing and allowed (root). */
function findChromium(): { ok: true } | { ok: false; reason: string } {
  if (fs.existsSync(CHROMIUM)) return { ok: true };
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (CHROMIUM !== '/usr/bin/chromium' || !root || !fs.existsSync('/usr/bin/apt-get')) {
    return { ok: false, reason: `${CHROMIUM} is missing and cannot be installed here (as root: apt-get install -y chromium)` };
  }
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    console.log('    installing chromium with apt-get (the dashboard tests need it) …');
    execFileSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 600_000 });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { stdio: 'ignore', env, timeout: 1_200_000 });
  } catch (e) {
    return { ok: false, reason: `apt-get install -y chromium failed: ${(e as Error).message.split('\n')[0]}` };
  }
  return fs.existsSync(CHROMIUM) ? { ok: true } : { ok: false, reason: `apt-get installed chromium, yet ${CHROMIUM} is missing` };
}

describe('operator dashboard in Chromium', function () {
  this.timeout(300_000);
  let t: TestEnv;
  let platform: Platform;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  let base: string;
  const answers = new Map<string, (r: Received) => { status: number; body?: string; headers?: Record<string, string> }>();
  /** Console errors and uncaught exceptions; `authed` turns off the allowance for the expected 401s. */
  const problems: string[] = [];
  const dialogs: string[] = [];
  let authed = false;
  /** Set while a test sends bad input on purpose: Chromium logs the API's 400 answers as failed loads. */
  let badInputOnPurpose = false;
  let cronId = '';
  let failedEventId = '';

  before(async function () {
    this.timeout(1_500_000);
    const found = findChromium();
    if (!found.ok) {
      if (process.env.CI === 'true') throw new Error(`CI=true: the dashboard browser tests must run, but ${found.reason}`);
      console.log(`    - skipping the dashboard browser tests: ${found.reason}`);
      this.skip();
    }
    // `npm test` builds first; a lone run of this file builds the dashboard itself.
    if (!fs.existsSync(path.join(DASHBOARD_DIR, 'index.html'))) {
      execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build-dashboard.mjs')], { stdio: 'inherit' });
    }
    t = await createTestEnv('dashboard', { API_KEYS: KEY });
    platform = await startPlatform(t.config, ['api', 'relay', 'worker'], { logger: quiet, migrate: false });
    base = `http://127.0.0.1:${platform.ports.api}/dashboard/`;
    receiver = await new Receiver().start();
    receiver.respond = (r) => (answers.get(r.path) ?? (() => ({ status: 200 })))(r);

    // playwright's launch() starts from a new, empty profile (a fresh user-data-dir) and removes it on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB', timezoneId: 'Europe/Berlin' });
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      // The 401s that make the dashboard ask for a key are logged by Chromium as failed loads; nothing else may be.
      if (!authed && /status of 401/.test(m.text()) && m.location().url.includes('/api/v1/')) return;
      if (badInputOnPurpose && /status of 400/.test(m.text()) && m.location().url.includes('/api/v1/')) return;
      problems.push(`console.error: ${m.text()} (${m.location().url})`);
    });
    page.on('dialog', (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      void d.dismiss();
    });
  });

  after(async () => {
    await browser?.close();
    await platform?.stop();
    await receiver?.stop();
    await t?.cleanup();
  });

  /** The API as the test's own client (the dashboard is what is under test, not these calls). */
  async function call<T>(method: string, p: string, body?: unknown): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${platform.ports.api}/api/v1${p}`, {
      method,
      headers: { Authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Moves the single-page app to a view (as a click on a link would) and waits for its heading. */
  async function show(hash: string, heading?: string | RegExp): Promise<void> {
    await page.evaluate((h) => {
      window.location.hash = h;
    }, hash);
    if (heading) await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  }

  /** The runs a list shows: the instant (datetime attribute) and the text of each. */
  const runsShown = (name: string) =>
    page
      .getByRole('list', { name, exact: true })
      .locator('li time')
      .evaluateAll((els) => els.map((el) => ({ at: el.getAttribute('datetime'), text: el.textContent })));

  const noHorizontalScroll = () =>
    page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: document.documentElement.clientWidth }));

  it('asks for an API key in a password field labelled "API key", says when one is refused, and keeps the right one in sessionStorage', async () => {
    await page.goto(base);
    const field = page.getByLabel('API key', { exact: true });
    await field.waitFor();
    expect(await field.getAttribute('type')).to.equal('password');

    await field.fill('not-the-key-0000');
    await page.getByRole('button', { name: 'Use this key' }).click();
    await page.getByText('The API refused that key').waitFor();

    authed = true;
    await page.getByLabel('API key', { exact: true }).fill(KEY);
    await page.getByRole('button', { name: 'Use this key' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('region', { name: 'Triggers' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('etp.apiKey'))).to.equal(KEY);
    expect(await page.evaluate(() => localStorage.length)).to.equal(0);
  });

  it('creates a cron trigger through the form, showing its next runs before saving and on its page after', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Triggers' }).click();
    await page.getByRole('link', { name: 'New trigger' }).click();
    await page.getByRole('heading', { level: 1, name: 'New trigger' }).waitFor();

    await page.getByLabel('Name', { exact: true }).fill('nightly-report');
    await page.getByLabel('Type', { exact: true }).selectOption('cron_scheduled');
    await page.getByLabel('Cron expression').fill('*/5 * * * *');
    await page.getByLabel('Time zone').fill('America/New_York');
    await page.getByLabel('Endpoint URL').fill(receiver.url('/cron'));
    await page.getByLabel('Payload (JSON)').fill('{ "report": "nightly" }');
    await page.getByLabel('Tags').fill('team:reports, env.test');

    // The preview, before anything is saved: the same runs the API's preview computes.
    const preview = page.getByRole('list', { name: 'Preview of the next runs' });
    await preview.locator('li').nth(9).waitFor();
    const expected = await call<{ occurrences: Array<{ at: string; local: string }> }>('POST', '/schedules/preview', {
      type: 'cron_scheduled',
      count: 10,
      config: { endpoint: 'https://example.com/x', cron: '*/5 * * * *', timezone: 'America/New_York' },
    });
    // Shown in the trigger's time zone (New York), as the API's `local`; the instant in the datetime attribute.
    const shown = await runsShown('Preview of the next runs');
    // A 5-minute boundary may pass between the two computations: compare from the first common run.
    const firstCommon = expected.occurrences.findIndex((o) => o.at === shown[0]!.at);
    expect(firstCommon, `${shown[0]!.at} among ${expected.occurrences.map((o) => o.at).join(', ')}`).to.be.within(0, 1);
    expect(shown.slice(0, 10 - firstCommon)).to.deep.equal(
      expected.occurrences.slice(firstCommon).map((o) => ({ at: o.at, text: o.local.replace('T', ' ') })),
    );
    expect(shown[0]!.text).to.match(/-0[45]:00$/);

    await page.getByRole('button', { name: 'Create trigger' }).click();
    await page.getByRole('heading', { level: 1, name: 'nightly-report' }).waitFor();
    cronId = /#\/triggers\/([0-9a-f-]{36})$/.exec(page.url())![1]!;
    const row = (await t.db('triggers').where({ id: cronId }).first()) as { type: string; config: string; status: string };
    expect(row).to.include({ type: 'cron_scheduled', status: 'active' });
    expect(JSON.parse(row.config)).to.include({ cron: '*/5 * * * *', timezone: 'America/New_York', endpoint: receiver.url('/cron') });
    expect(await count(t.db, 'trigger_tags', { trigger_id: cronId })).to.equal(2);

    await page.getByRole('list', { name: 'Next runs', exact: true }).locator('li').nth(9).waitFor();
    const upcoming = await call<{ occurrences: Array<{ at: string; local: string }> }>('GET', `/triggers/${cronId}/upcoming?count=10`);
    expect(await runsShown('Next runs')).to.deep.equal(upcoming.occurrences.map((o) => ({ at: o.at, text: o.local.replace('T', ' ') })));
  });

  it('fires a test run and shows the event appear among the recent events, then delivered', async () => {
    await page.getByRole('button', { name: 'Test run' }).click();
    // The payload box starts from the trigger's configured payload.
    const box = page.getByLabel('Test payload (JSON)');
    expect(JSON.parse(await box.inputValue())).to.deep.equal({ report: 'nightly' });
    await page.getByRole('button', { name: 'Send test run' }).click();
    const status = page.getByRole('status').filter({ hasText: 'Test run fired' });
    await status.waitFor();
    const eventId = await until(async () => {
      const e = (await t.db('event_logs').where({ trigger_id: cronId, source: 'manual-test' }).first()) as { id: string } | undefined;
      return e?.id;
    });
    const row = page.locator(`tr[data-event-id="${eventId}"]`);
    await row.waitFor();
    // The page refreshes by itself: the delivery shows up without any click.
    await row.locator('.badge-success').waitFor({ timeout: 90_000 });
    const delivered = receiver.forPath('/cron');
    expect(delivered.length).to.be.greaterThan(0);
    expect(JSON.parse(delivered[delivered.length - 1]!.body)).to.deep.include({ report: 'nightly' });
  });

  it("shows a failing endpoint's attempts with their status and body, and replays the event to success once the receiver recovers", async () => {
    answers.set('/failing', () => ({ status: 500, body: 'database is down <b>really</b>' }));
    const trigger = await call<{ id: string }>('POST', '/triggers', {
      name: 'flaky-endpoint',
      type: 'webhook',
      config: { endpoint: receiver.url('/failing'), schema: { type: 'object' }, retry: { max_attempts: 2, backoff_ms: 50 } },
    });
    await show(`#/triggers/${trigger.id}`, 'flaky-endpoint');
    await page.getByRole('button', { name: 'Test run' }).click();
    await page.getByRole('button', { name: 'Send test run' }).click();
    await page.getByRole('status').filter({ hasText: 'Test run fired' }).getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: /^Event / }).waitFor();
    failedEventId = /#\/events\/([0-9a-f-]{36})$/.exec(page.url())![1]!;

    await page.locator('.page-head .badge-failure').waitFor({ timeout: 90_000 });
    const attempts = page.locator('tr.attempt-row');
    await attempts.nth(1).waitFor();
    expect(await attempts.count()).to.equal(2);
    for (const r of await attempts.all()) {
      expect(await r.locator('td[data-label="Status"]').textContent()).to.equal('500');
      expect(await r.locator('pre.body').textContent()).to.equal('database is down <b>really</b>');
      expect(await r.locator('b').count()).to.equal(0);
    }

    answers.set('/failing', () => ({ status: 200 }));
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.getByRole('status').filter({ hasText: 'Replayed as event' }).locator('a.replay-link').click();
    await page.locator('.page-head .badge-success').waitFor({ timeout: 90_000 });
    const replayId = /#\/events\/([0-9a-f-]{36})$/.exec(page.url())![1]!;
    expect(replayId).to.not.equal(failedEventId);
    const replay = (await t.db('event_logs').where({ id: replayId }).first()) as { replay_of: string; execution_status: string };
    expect(replay).to.include({ replay_of: failedEventId, execution_status: 'success' });
    const original = (await t.db('event_logs').where({ id: failedEventId }).first()) as { execution_status: string };
    expect(original.execution_status).to.equal('failure');
  });

  it("shows an event's trace id on its page: the trace its delivery requests carried as traceparent", async () => {
    await show(`#/events/${failedEventId}`, /^Event /);
    const logged = (await t.db('event_logs').where({ id: failedEventId }).first()) as { trace_parent: string };
    const traceId = logged.trace_parent.slice(3, 35);
    expect(traceId).to.match(/^[0-9a-f]{32}$/);
    await page.locator('code', { hasText: traceId }).waitFor();
    const sent = receiver.forPath('/failing').filter((r) => r.headers['webhook-id'] === failedEventId);
    expect(sent.length).to.be.greaterThan(0);
    for (const r of sent) expect(String(r.headers.traceparent).slice(3, 35)).to.equal(traceId);
  });

  it('marks a replayed event on the Failed page and replays only the events shown that were not replayed, once', async () => {
    const triggerId = ((await t.db('event_logs').where({ id: failedEventId }).first()) as { trigger_id: string }).trigger_id;
    // A second failure of the same trigger, not replayed yet.
    answers.set('/failing', () => ({ status: 500 }));
    const second = (await call<{ event_id: string }>('POST', `/triggers/${triggerId}/test`, {})).event_id;
    await until(
      async () => ((await t.db('event_logs').where({ id: second }).first()) as { execution_status: string }).execution_status === 'failure',
      {
        timeoutMs: 90_000,
        message: 'the second event failed',
      },
    );
    answers.set('/failing', () => ({ status: 200 }));
    await show(`#/failed?trigger_id=${triggerId}`, 'Failed events');
    // Replayed in the test above: marked "replayed as", and left out of "Replay all shown".
    await page.locator(`tr[data-event-id="${failedEventId}"] .replayed-mark`).waitFor();
    await page.locator(`tr[data-event-id="${second}"]`).waitFor();
    const before = await count(t.db, 'event_logs', { replay_of: failedEventId });
    await page.getByRole('button', { name: /^Replay all shown \(1\)$/ }).click();
    await page.getByRole('button', { name: 'Yes, replay 1' }).click();
    await page.getByRole('status').filter({ hasText: 'Replayed 1 of 1' }).waitFor();
    expect(await count(t.db, 'event_logs', { replay_of: second })).to.equal(1);
    expect(await count(t.db, 'event_logs', { replay_of: failedEventId })).to.equal(before);
    // Doing it twice replays nothing: both are marked now, and the button has nothing left to replay.
    await page.locator(`tr[data-event-id="${second}"] .replayed-mark`).waitFor();
    expect(await page.getByRole('button', { name: /^Replay all shown \(0\)$/ }).isDisabled()).to.equal(true);
  });

  it('offers retry now and cancel retries while an event is retried, and no replay until it has ended', async () => {
    answers.set('/retrying', () => ({ status: 503, headers: { 'Retry-After': '3600' } }));
    const trigger = await call<{ id: string }>('POST', '/triggers', {
      name: 'retrying-endpoint',
      type: 'webhook',
      config: { endpoint: receiver.url('/retrying'), schema: { type: 'object' }, retry: { max_attempts: 5, backoff_ms: 50 } },
    });
    const eventId = (await call<{ event_id: string }>('POST', `/triggers/${trigger.id}/test`, {})).event_id;
    await until(
      async () => ((await t.db('event_logs').where({ id: eventId }).first()) as { next_attempt_at: Date | null }).next_attempt_at,
      {
        timeoutMs: 60_000,
        message: 'a retry waiting',
      },
    );
    await show(`#/events/${eventId}`, /^Event /);
    expect(await page.getByRole('button', { name: 'Replay' }).isDisabled()).to.equal(true);
    await page.locator('#replay-note').waitFor();
    // The retry state in words: which attempt comes next, of how many, and when (in a labelled zone).
    await page.locator('.page-head .badge-retrying').waitFor();
    const state = page.locator('.subtitle .retry-state');
    expect(await state.textContent()).to.match(/^attempt 2 of 5, next at .+ (CET|CEST|GMT\+[12]) \(in \d+ (minutes?|hours?)\)$/);
    expect(await page.locator('.subtitle a.trigger-ref').textContent()).to.equal('retrying-endpoint');
    // On the list too.
    await show(`#/events?trigger_name=retrying-endpoint`, 'Events');
    expect(await page.locator(`tr[data-event-id="${eventId}"] .retry-state`).textContent()).to.match(/^attempt 2 of 5, next at /);
    await show(`#/events/${eventId}`, /^Event /);

    // Retry now: the waiting attempt (2) is made at once; the endpoint still fails, so a third waits.
    await page.getByRole('button', { name: 'Retry now' }).click();
    await page.getByRole('status').filter({ hasText: 'Attempt 2 is being made now' }).waitFor();
    await until(async () => receiver.forPath('/retrying').length === 2, { timeoutMs: 60_000, message: 'attempt 2 made' });

    // Cancel, after a confirmation: the event ends as failure, and can be replayed now.
    await until(async () => ((await t.db('event_logs').where({ id: eventId }).first()) as { attempts: number }).attempts === 2, {
      timeoutMs: 60_000,
      message: 'attempt 2 recorded',
    });
    // The confirmation takes focus to its safe choice, and gives it back to the button that opened it.
    await page.getByRole('button', { name: 'Cancel retries' }).click();
    await until(() => page.evaluate(() => document.activeElement?.textContent === 'Keep retrying'), { message: 'focus on Keep retrying' });
    await page.keyboard.press('Enter');
    await until(() => page.evaluate(() => document.activeElement?.textContent === 'Cancel retries'), {
      message: 'focus back on Cancel retries',
    });
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Yes, cancel retries' }).click();
    await page.locator('.page-head .badge-failure').waitFor({ timeout: 30_000 });
    // The retry buttons are gone; focus is on Replay, the next step, not on the page's body.
    await until(() => page.evaluate(() => document.activeElement?.textContent === 'Replay'), { message: 'focus on Replay' });
    expect(((await t.db('event_logs').where({ id: eventId }).first()) as { error_message: string }).error_message).to.equal(
      'cancelled by an operator',
    );
    expect(await page.getByRole('button', { name: 'Replay' }).isDisabled()).to.equal(false);
    expect(await page.getByRole('button', { name: 'Retry now' }).count()).to.equal(0);
  });

  it("shows a webhook trigger's recent calls: the rejected one with its code and signature verdict, the accepted one with its event", async () => {
    const trigger = await call<{ id: string }>('POST', '/triggers', {
      name: 'called-webhook',
      type: 'webhook',
      config: { endpoint: receiver.url('/called'), schema: { type: 'object' }, secret: 'called-secret-123' },
    });
    const url = `http://127.0.0.1:${platform.ports.api}/api/v1/webhook/${trigger.id}`;
    const body = JSON.stringify({ order: 1 });
    const unsigned = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unsigned.status).to.equal(401);
    const sig = `sha256=${createHmac('sha256', 'called-secret-123').update(body).digest('hex')}`;
    const signed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Signature': sig }, body });
    expect(signed.status).to.equal(202);
    await until(async () => (await count(t.db, 'webhook_rejections', { trigger_id: trigger.id })) === 1, { message: 'rejection logged' });
    await show(`#/triggers/${trigger.id}`, 'called-webhook');
    const rejected = page.locator('tr.call-rejected');
    await rejected.waitFor();
    expect(await rejected.locator('td[data-label="Answer"]').textContent()).to.equal('401 INVALID_SIGNATURE');
    expect(await rejected.locator('td[data-label="Signature"]').textContent()).to.equal('missing');
    expect(await page.locator('tr.call-accepted td[data-label="Reason / event"] a').count()).to.equal(1);
  });

  it('pauses and resumes a trigger from its page', async () => {
    await show(`#/triggers/${cronId}`, 'nightly-report');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('status').filter({ hasText: 'Paused. No runs fire while it is paused' }).waitFor();
    await page.locator('.page-head .badge-inactive').waitFor();
    await page.getByText('Paused: these are the runs resuming it now would give.').waitFor();
    expect(((await t.db('triggers').where({ id: cronId }).first()) as { status: string }).status).to.equal('inactive');
    expect(await count(t.db, 'trigger_schedules', { trigger_id: cronId, status: 'pending' })).to.equal(0);

    await page.getByRole('button', { name: 'Resume' }).click();
    const resumed = page.getByRole('status').filter({ hasText: 'Resumed: the next run is at' });
    await resumed.waitFor();
    await page.locator('.page-head .badge-active').waitFor();
    expect(((await t.db('triggers').where({ id: cronId }).first()) as { status: string }).status).to.equal('active');
    // The next run it names is the one scheduled, in the zone the page shows times in (here the browser's).
    const next = (await call<{ next_scheduled_run: string }>('GET', `/triggers/${cronId}`)).next_scheduled_run;
    const berlin = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    expect(await resumed.textContent()).to.include(berlin.format(new Date(next)));
    expect(await count(t.db, 'trigger_schedules', { trigger_id: cronId, status: 'pending' })).to.equal(1);
  });

  it('edits a trigger through the form, keeping the config it has no field for', async () => {
    const created = await call<{ id: string }>('POST', '/triggers', {
      name: 'hourly-sync',
      type: 'cron_scheduled',
      config: {
        endpoint: receiver.url('/sync'),
        cron: '0 * * * *',
        timezone: 'UTC',
        max_backfill: 7,
        retry: { max_attempts: 3, max_age_seconds: 600 },
      },
    });
    await show(`#/triggers/${created.id}`, 'hourly-sync');
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { level: 1, name: 'Edit trigger' }).waitFor();
    expect(await page.getByLabel('Type', { exact: true }).isDisabled()).to.equal(true);
    await page.getByLabel('Name', { exact: true }).fill('half-hourly-sync');
    await page.getByLabel('Cron expression').fill('*/30 * * * *');
    await page.getByLabel('Max attempts').fill('4');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { level: 1, name: 'half-hourly-sync' }).waitFor();
    const row = (await t.db('triggers').where({ id: created.id }).first()) as { name: string; config: string };
    expect(row.name).to.equal('half-hourly-sync');
    expect(JSON.parse(row.config)).to.deep.include({
      cron: '*/30 * * * *',
      max_backfill: 7,
      retry: { max_attempts: 4, backoff_ms: 1000, max_age_seconds: 600 },
    });
  });

  it('shows and edits the flow-control fields: sets a rate and order, clears a concurrency limit, marks a bad value', async () => {
    const created = await call<{ id: string }>('POST', '/triggers', {
      name: 'flow-limited',
      type: 'webhook',
      config: { endpoint: receiver.url('/flow'), schema: {}, delivery_max_concurrency: 3 },
    });
    await show(`#/triggers/${created.id}`, 'flow-limited');
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { level: 1, name: 'Edit trigger' }).waitFor();
    expect(await page.getByLabel('Max requests in flight').inputValue()).to.equal('3');
    expect(await page.getByLabel('Order', { exact: true }).inputValue()).to.equal('false');
    await page.getByLabel('Max deliveries per second').fill('20000');
    badInputOnPurpose = true;
    await page.getByRole('button', { name: 'Save changes' }).click();
    // Out of range: the API's 400 is shown on the field, and nothing is saved.
    await page.locator('#t-delivery_rate_per_second[aria-invalid="true"]').waitFor();
    badInputOnPurpose = false;
    expect(JSON.parse(((await t.db('triggers').where({ id: created.id }).first()) as { config: string }).config)).to.not.have.property(
      'delivery_rate_per_second',
    );
    await page.getByLabel('Max deliveries per second').fill('25');
    await page.getByLabel('Max requests in flight').fill('');
    await page.getByLabel('Order', { exact: true }).selectOption('true');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { level: 1, name: 'flow-limited' }).waitFor();
    const config = JSON.parse(((await t.db('triggers').where({ id: created.id }).first()) as { config: string }).config) as Record<
      string,
      unknown
    >;
    expect(config).to.include({ delivery_rate_per_second: 25, ordered_delivery: true });
    expect(config).to.not.have.property('delivery_max_concurrency');
  });

  it('deletes a trigger only after a confirmation', async () => {
    const created = await call<{ id: string }>('POST', '/triggers', {
      name: 'to-be-deleted',
      type: 'webhook',
      config: { endpoint: receiver.url('/gone'), schema: {} },
    });
    await show(`#/triggers/${created.id}`, 'to-be-deleted');
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await until(() => page.evaluate(() => document.activeElement?.textContent === 'Cancel'), { message: 'focus on Cancel' });
    await page.getByRole('button', { name: 'Cancel' }).click();
    await until(() => page.evaluate(() => document.activeElement?.textContent === 'Delete'), { message: 'focus back on Delete' });
    expect(await count(t.db, 'triggers', { id: created.id })).to.equal(1);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByRole('heading', { level: 1, name: 'Triggers' }).waitFor();
    expect(await count(t.db, 'triggers', { id: created.id })).to.equal(0);
  });

  it(`shows a trigger named ${XSS_NAME}, its payload and errors literally, and no dialog opens`, async () => {
    const trigger = await call<{ id: string }>('POST', '/triggers', {
      name: XSS_NAME,
      type: 'webhook',
      config: { endpoint: receiver.url('/xss'), schema: { type: 'object' } },
    });
    const fired = await call<{ event_id: string }>('POST', `/triggers/${trigger.id}/test`, {
      payload: { html: '<script>alert(2)</script>' },
    });

    await show('#/triggers', 'Triggers');
    await page.getByLabel('Name contains').fill('onerror');
    await page.getByRole('button', { name: 'Filter' }).click();
    const link = page.locator('a.trigger-name');
    await until(async () => (await link.count()) === 1 && (await link.textContent()) === XSS_NAME, {
      timeoutMs: 30_000,
      message: 'one literal match',
    });
    expect(await page.locator('main img').count()).to.equal(0);

    await link.click();
    await page.getByRole('heading', { level: 1, name: XSS_NAME }).waitFor();
    expect(await page.locator('h1.trigger-title').textContent()).to.equal(XSS_NAME);
    expect(await page.locator('main img').count()).to.equal(0);

    await show(`#/events/${fired.event_id}`, /^Event /);
    const payload = page.getByLabel('Event payload');
    await until(async () => ((await payload.textContent()) ?? '').includes('<script>alert(2)</script>'), {
      message: 'payload shown as text',
    });
    expect(await page.locator('main script').count()).to.equal(0);
    expect(dialogs).to.deep.equal([]);
  });

  it('shows the overview: counts from /api/v1/overview and the events chart', async () => {
    await show('#/', 'Overview');
    const o = await call<{ triggers: { total: number }; deliveries: { failed: number } }>('GET', '/overview');
    const triggers = page.getByRole('region', { name: 'Triggers' });
    await until(async () => ((await triggers.locator('.big-value').first().textContent()) ?? '') === String(o.triggers.total), {
      timeoutMs: 30_000,
      message: 'trigger total',
    });
    await page.locator('.chart-canvas canvas').first().waitFor();
    const caption = await page.locator('.chart figcaption').textContent();
    expect(caption).to.match(/\d+ succeeded, \d+ failed, \d+ in flight/);
  });

  it('is reachable by keyboard, with a visible focus ring', async () => {
    // A fresh document: keyboard navigation starts at its top (the key stays in sessionStorage).
    await show('#/');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => ({
      text: document.activeElement?.textContent,
      outline: getComputedStyle(document.activeElement!).outlineStyle,
    }));
    expect(first).to.deep.equal({ text: 'Skip to content', outline: 'solid' });
    // Brand, then the main navigation: Overview, Triggers.
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).to.equal('Triggers');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Triggers' }).waitFor();
    // The new view moves focus to its content (an effect that runs after the view has painted).
    await until(async () => (await page.evaluate(() => document.activeElement?.id)) === 'main', { message: 'focus on main' });
    // The filters are labelled controls, reached by Tab from the content.
    await page.getByLabel('Name contains').focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (document.activeElement as HTMLElement).id)).to.equal('f-type');
  });

  it('has no horizontal scroll at 390 px on any view', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      const views: Array<[string, string | RegExp]> = [
        ['#/', 'Overview'],
        ['#/triggers', 'Triggers'],
        ['#/triggers/new', 'New trigger'],
        [`#/triggers/${cronId}`, 'nightly-report'],
        [`#/triggers/${cronId}/edit`, 'Edit trigger'],
        ['#/events', 'Events'],
        [`#/events/${failedEventId}`, /^Event /],
        ['#/failed', 'Failed events'],
      ];
      for (const [hash, heading] of views) {
        await show(hash, heading);
        // Let the view's data arrive (lists and cards), then measure.
        await page.locator('main .card, main table.list, main .empty, main form.trigger-form').first().waitFor();
        const m = await noHorizontalScroll();
        expect(m.scroll, `${hash} is ${m.scroll} px wide in a ${m.width} px window`).to.be.at.most(m.width);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it(`takes the README screenshots${UPDATE_SCREENSHOTS ? ' into docs/' : ' (in memory; UPDATE_SCREENSHOTS=1 writes them)'}`, async () => {
    // Two hours of history for the chart, as a running platform would have.
    const now = Date.now();
    const rows = [];
    for (let m = 118; m >= 1; m--) {
      const n = 6 + Math.round(4 * Math.sin(m / 9)) + (m % 7);
      for (let i = 0; i < n; i++) {
        const at = new Date(now - m * 60_000 + i * 1000);
        const status = i === 0 && m % 17 === 0 ? 'failure' : 'success';
        rows.push({
          id: randomUUID(),
          trigger_id: cronId,
          trigger_type: 'cron_scheduled',
          source: 'scheduler',
          is_test_run: 0,
          payload: '{"report":"nightly"}',
          scheduled_for: at,
          fired_at: at,
          published_at: at,
          execution_status: status,
          attempts: 1,
          created_at: at,
          updated_at: at,
        });
      }
    }
    await t.db('event_logs').insert(rows);
    // And the fire lag of the last hour's scheduled firings (what the relay records for each fire batch).
    for (let i = 0; i < 60; i++) await insertFireLags(t.db, [4 + ((i * 37) % 23) + (i === 7 ? 180 : 0)], new Date(now - (i + 1) * 60_000));
    const succeeded = rows.filter((r) => r.execution_status === 'success').length;

    const shots: Array<[string, string, string | RegExp]> = [
      ['dashboard-overview.png', '#/', 'Overview'],
      ['dashboard-trigger.png', `#/triggers/${cronId}`, 'nightly-report'],
    ];
    for (const [file, hash, heading] of shots) {
      await show(hash, heading);
      await page.locator('main .card').first().waitFor();
      if (file === 'dashboard-overview.png') {
        await until(
          async () => {
            const caption = (await page.locator('.chart figcaption').textContent()) ?? '';
            return Number(/: (\d+) succeeded/.exec(caption)?.[1] ?? 0) >= succeeded;
          },
          { timeoutMs: 30_000, message: 'the chart with its history' },
        );
      } else {
        await page.getByRole('list', { name: 'Next runs', exact: true }).locator('li').nth(9).waitFor();
      }
      const png = await page.screenshot({ fullPage: true, animations: 'disabled' });
      expect(png.subarray(1, 4).toString()).to.equal('PNG');
      if (UPDATE_SCREENSHOTS) fs.writeFileSync(path.join(REPO_ROOT, 'docs', file), png);
    }
  });

  // Issue 24: the dashboard in the operator's words (in a block of its own, before the console check).
  {
    /** The text and zone of the first <time> in a labelled fact (the trigger page's "Next run"). */
    const fact = (name: string) =>
      page
        .locator('dl.facts > div')
        .filter({ has: page.locator('dt', { hasText: new RegExp(`^${name}$`) }) })
        .locator('time')
        .first();
    const hms = (iso: string, zone: string) =>
      new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(
        new Date(iso),
      );

    it("labels times with their zone and switches between the browser's, UTC and the trigger's, remembered across a reload", async () => {
      await show(`#/triggers/${cronId}`, 'nightly-report');
      const next = fact('Next run');
      await next.waitFor();
      const at = (await next.getAttribute('datetime'))!;
      // The browser's zone (Berlin) by default, named.
      expect(await next.getAttribute('data-zone')).to.equal('Europe/Berlin');
      expect(await next.textContent())
        .to.match(/(CET|CEST|GMT\+[12])/)
        .and.include(hms(at, 'Europe/Berlin'));
      const picker = page.getByLabel('Times in');
      await picker.selectOption('utc');
      await until(async () => (await next.getAttribute('data-zone')) === 'UTC', { message: 'shown in UTC' });
      expect(await next.textContent()).to.include(`${hms(at, 'UTC')} UTC`);
      await picker.selectOption('trigger');
      await until(async () => (await next.getAttribute('data-zone')) === 'America/New_York', { message: "shown in the trigger's zone" });
      expect(await next.textContent())
        .to.match(/(EST|EDT|GMT-[45])/)
        .and.include(hms(at, 'America/New_York'));
      // Remembered by this browser.
      expect(await page.evaluate(() => localStorage.getItem('etp.timeZone'))).to.equal('trigger');
      await page.reload();
      await page.getByRole('heading', { level: 1, name: 'nightly-report' }).waitFor();
      expect(await page.getByLabel('Times in').inputValue()).to.equal('trigger');
      await until(async () => (await fact('Next run').getAttribute('data-zone')) === 'America/New_York', {
        message: 'still the trigger zone',
      });
      await page.getByLabel('Times in').selectOption('browser');
    });

    it('ticks relative times between refreshes', async () => {
      const fired = (await call<{ event_id: string }>('POST', `/triggers/${cronId}/test`, {})).event_id;
      await show(`#/events/${fired}`, /^Event /);
      const rel = fact('Fired').locator('.relative');
      await until(async () => /seconds? ago/.test((await rel.textContent()) ?? ''), { message: 'fired seconds ago' });
      const first = await rel.textContent();
      // Well inside the page's 5 s refresh, the text moves on its own (a second ticks).
      await until(async () => (await rel.textContent()) !== first, { timeoutMs: 3000, message: 'the relative time ticked' });
    });

    it('names triggers on the Events and event pages, filters by trigger name and time range, and says when a trigger was deleted', async () => {
      const trigger = await call<{ id: string }>('POST', '/triggers', {
        name: 'named-for-events',
        type: 'webhook',
        config: { endpoint: receiver.url('/named'), schema: { type: 'object' } },
      });
      const eventId = (await call<{ event_id: string }>('POST', `/triggers/${trigger.id}/test`, { payload: {} })).event_id;
      const firedAt = new Date((await call<{ fired_at: string }>('GET', `/events/${eventId}`)).fired_at);
      await show('#/events', 'Events');
      await page.getByLabel('Trigger name or id').fill('named-for-events');
      await page.getByRole('button', { name: 'Filter' }).click();
      const row = page.locator(`tr[data-event-id="${eventId}"]`);
      await row.waitFor();
      expect(page.url()).to.include('trigger_name=named-for-events');
      expect(await row.locator('td[data-label="Trigger"]').textContent()).to.equal('named-for-events');
      // The list may be re-rendered by its refresh meanwhile: wait for the rendered table, then count.
      await until(async () => (await page.locator('table.list tbody tr').count()) === 1, {
        message: 'the filtered list shows exactly one event',
      });
      await page.locator('nav.pager').getByText('1 event', { exact: true }).waitFor();

      // The time range, typed in the browser's zone (Berlin) as the labels say.
      const local = (d: Date) =>
        new Intl.DateTimeFormat('sv-SE', {
          timeZone: 'Europe/Berlin',
          year: 'numeric',
          month: '2-digit',
          day: '2-digit',
          hour: '2-digit',
          minute: '2-digit',
        })
          .format(d)
          .replace(' ', 'T');
      await page.getByLabel('Fired from (Europe/Berlin)').fill(local(new Date(firedAt.getTime() + 60_000)));
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.getByText('No events match.').waitFor();
      await page.getByLabel('Fired from (Europe/Berlin)').fill(local(new Date(firedAt.getTime() - 60_000)));
      await page.getByLabel('Fired before (Europe/Berlin)').fill(local(new Date(firedAt.getTime() + 120_000)));
      await page.getByRole('button', { name: 'Filter' }).click();
      await row.waitFor();

      await show(`#/events/${eventId}`, /^Event /);
      await page.locator('.subtitle a.trigger-ref', { hasText: 'named-for-events' }).waitFor();
      await call('DELETE', `/triggers/${trigger.id}`);
      await page.locator('.subtitle .trigger-deleted').waitFor({ timeout: 30_000 });
      expect(await page.locator('.subtitle .trigger-deleted').textContent()).to.equal(`deleted trigger (${trigger.id.slice(0, 8)})`);
    });

    it('shows a fired one-shot trigger as completed, without Pause or Resume', async () => {
      const trigger = await call<{ id: string }>('POST', '/triggers', {
        name: 'one-shot-done',
        type: 'time_scheduled',
        config: { endpoint: receiver.url('/once'), delay_seconds: 1, timezone: 'UTC' },
      });
      await until(async () => receiver.forPath('/once').length === 1, { timeoutMs: 60_000, message: 'the one-shot fired' });
      await show(`#/triggers/${trigger.id}`, 'one-shot-done');
      await page.locator('.page-head .badge-completed').waitFor({ timeout: 30_000 });
      await page.getByText('Completed: a one-shot trigger fires once').waitFor();
      expect(await page.getByRole('button', { name: 'Pause' }).count()).to.equal(0);
      expect(await page.getByRole('button', { name: 'Resume' }).count()).to.equal(0);
      await show('#/triggers?q=one-shot-done', 'Triggers');
      await page.locator('td[data-label="Status"] .badge-completed').waitFor();
    });

    it('says what pausing and resuming a webhook trigger mean: callers get 409, nothing is kept, and no "next run"', async () => {
      const trigger = await call<{ id: string }>('POST', '/triggers', {
        name: 'pausable-webhook',
        type: 'webhook',
        config: { endpoint: receiver.url('/pausable'), schema: { type: 'object' } },
      });
      await show(`#/triggers/${trigger.id}`, 'pausable-webhook');
      await page.getByRole('button', { name: 'Pause' }).click();
      const paused = page.getByRole('status').filter({ hasText: 'Paused.' });
      await paused.waitFor();
      expect(await paused.textContent())
        .to.include('answered 409 Conflict')
        .and.include('not kept');
      await page.locator('.paused-note').waitFor();
      // What the text says is what happens.
      const res = await fetch(`http://127.0.0.1:${platform.ports.api}/api/v1/webhook/${trigger.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).to.equal(409);
      expect(await count(t.db, 'event_logs', { trigger_id: trigger.id })).to.equal(0);
      await page.getByRole('button', { name: 'Resume' }).click();
      const resumed = page.getByRole('status').filter({ hasText: 'Resumed' });
      await resumed.waitFor();
      expect(await resumed.textContent()).to.equal('Resumed: calls to its webhook URL are accepted again.');
    });

    it("fires a test run with a typed payload, pre-filled from the schema, with JSON and schema errors shown on the box; shows the attempt's headers, secrets masked", async () => {
      const trigger = await call<{ id: string }>('POST', '/triggers', {
        name: 'orders-webhook',
        type: 'webhook',
        config: {
          endpoint: receiver.url('/orders'),
          secret: 'orders-signing-secret-1',
          headers: { Authorization: 'Bearer tok-very-secret' },
          schema: {
            type: 'object',
            required: ['order_id', 'amount'],
            properties: {
              order_id: { type: 'string', examples: ['INV-1001'] },
              amount: { type: 'integer', minimum: 1 },
              currency: { type: 'string', default: 'EUR' },
            },
          },
        },
      });
      await show(`#/triggers/${trigger.id}`, 'orders-webhook');
      await page.getByRole('button', { name: 'Test run' }).click();
      const box = page.getByLabel('Test payload (JSON)');
      expect(JSON.parse(await box.inputValue())).to.deep.equal({ order_id: 'INV-1001', amount: 1, currency: 'EUR' });
      // The box takes the focus in an effect that runs after it is drawn: wait for that, not just for the box.
      await until(() => page.evaluate(() => document.activeElement?.id === 'test-payload'), { message: 'focus on the test payload box' });

      badInputOnPurpose = true;
      // Not JSON: said on the box, nothing sent.
      await box.fill('{ "order_id": ');
      await page.getByRole('button', { name: 'Send test run' }).click();
      const error = page.locator('#test-payload-error');
      await error.waitFor();
      expect(await error.textContent()).to.match(/^Not valid JSON/);
      expect(await box.getAttribute('aria-invalid')).to.equal('true');
      // Typing clears it.
      await box.fill('{ "order_id": 7 }');
      await error.waitFor({ state: 'detached' });
      // The schema's verdict, on the box, naming the fields.
      await page.getByRole('button', { name: 'Send test run' }).click();
      await error.waitFor();
      const text = (await error.textContent()) ?? '';
      expect(text).to.include('amount').and.include('order_id');
      expect(receiver.forPath('/orders')).to.have.length(0);

      badInputOnPurpose = false;
      await box.fill('{ "order_id": "INV-7", "amount": 3 }');
      await page.getByRole('button', { name: 'Send test run' }).click();
      await page.getByRole('status').filter({ hasText: 'Test run fired' }).getByRole('link').click();
      await page.locator('.page-head .badge-success').waitFor({ timeout: 90_000 });
      expect(JSON.parse(receiver.forPath('/orders')[0]!.body)).to.deep.equal({ order_id: 'INV-7', amount: 3 });

      // The attempt's headers, secrets masked.
      await page.getByText('Headers of attempt 1').click();
      await page.locator('dl.headers[aria-label="Request headers sent"]').waitFor();
      const pairs = await page
        .locator('dl.headers[aria-label="Request headers sent"] > div')
        .evaluateAll((els) => els.map((el) => [el.querySelector('dt')!.textContent, el.querySelector('dd')!.textContent]));
      const headers = Object.fromEntries(pairs) as Record<string, string>;
      expect(headers).to.include({ authorization: 'Bearer ••••••', 'webhook-signature': '••••••', 'content-type': 'application/json' });
      await page.locator('dl.headers[aria-label="Response headers received"]').waitFor();
      expect(await page.locator('main').textContent()).to.not.include('tok-very-secret');
    });

    it('puts form errors on their field in plain words, clears them when the field is fixed, and focuses the first', async () => {
      await show(`#/triggers/${cronId}/edit`, 'Edit trigger');
      badInputOnPurpose = true;
      await page.getByLabel('Tags').fill('team:reports, env.test, Bad-Tag');
      await page.getByRole('button', { name: 'Save changes' }).click();
      const tagError = page.locator('#t-tags-error');
      await tagError.waitFor();
      expect(await tagError.textContent()).to.equal('Tag “Bad-Tag” may use only a–z, 0–9 and _ . : - (1 to 64 characters)');
      // Focus on the field marked invalid, not lost to the page.
      await until(() => page.evaluate(() => document.activeElement?.id === 't-tags'), { message: 'focus on the tags field' });
      // Fixing the field clears its error.
      await page.getByLabel('Tags').fill('team:reports, env.test');
      await tagError.waitFor({ state: 'detached' });

      await page.getByLabel('Time zone').fill('Mars/Olympus_Mons');
      await page.getByRole('button', { name: 'Save changes' }).click();
      const zoneError = page.locator('#t-timezone-error');
      await zoneError.waitFor();
      await until(() => page.evaluate(() => document.activeElement?.id === 't-timezone'), { message: 'focus on the time zone field' });
      await page.getByLabel('Time zone').fill('Europe/Paris');
      await zoneError.waitFor({ state: 'detached' });
      expect(await page.locator('.trigger-form .notice-error').count()).to.equal(0);
      badInputOnPurpose = false;
      await page.getByRole('link', { name: 'Cancel' }).click();
      await page.getByRole('heading', { level: 1, name: 'nightly-report' }).waitFor();
    });

    it('explains each overview card in plain words, without internal terms', async () => {
      await show('#/', 'Overview');
      await page.getByRole('region', { name: 'Schedule punctuality' }).waitFor();
      expect(await page.locator('main .card').count()).to.equal(await page.locator('main .card .card-note').count());
      const text = (await page.locator('main').textContent()) ?? '';
      for (const internal of ['Fire lag', 'Outbox', 'to publish', 'in the active view']) expect(text).to.not.include(internal);
    });
  }

  it('logged no console error and opened no dialog during the run', () => {
    expect(problems).to.deep.equal([]);
    expect(dialogs).to.deep.equal([]);
  });
});
