// What the browser tests (purchase.mjs, organiser.mjs, accounts.mjs) share:
// the environment they read, the API client for what is done outside the
// browser, the step log, and browserTest(), which launches Debian's Chromium
// (driven by playwright-core), collects the page's problems, signs in, out
// and up, and reports a failure with a screenshot.
//
//   STAMPEDE_WEB_URL         the stack's nginx, e.g. http://127.0.0.1:18080 (required)
//   STAMPEDE_ADMIN_EMAIL     an admin account on that stack (default: scripts/up's)
//   STAMPEDE_ADMIN_PASSWORD
//   STAMPEDE_ARTIFACTS       where screenshots go (default .run/artifacts)
//   STAMPEDE_CHROMIUM        the browser (default /usr/bin/chromium)

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const BASE = (process.env.STAMPEDE_WEB_URL || '').replace(/\/$/, '');
export const ADMIN_EMAIL = process.env.STAMPEDE_ADMIN_EMAIL || 'admin@stampede.local';
export const ADMIN_PASSWORD = process.env.STAMPEDE_ADMIN_PASSWORD || 'stampede-admin';
export const ARTIFACTS = path.resolve(process.env.STAMPEDE_ARTIFACTS || '.run/artifacts');
const CHROMIUM = process.env.STAMPEDE_CHROMIUM || '/usr/bin/chromium';

if (!BASE) {
  console.error('STAMPEDE_WEB_URL is not set (the nginx of a running stack, e.g. http://127.0.0.1:8080)');
  process.exit(2);
}

/** The values of the named variables; exits (status 2) saying what they are for when one is unset. */
export function requireEnv(names, what) {
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) {
    console.error(`${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not set (${what})`);
    process.exit(2);
  }
  return names.map((n) => process.env[n]);
}

/** This run's tag, in e-mail addresses and event names, so runs on one stack do not meet. */
export const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;

let stepNo = 0;
/** Logs the next numbered step; a failure names the step it stopped at. */
export function step(text) {
  stepNo += 1;
  console.log(`  [${String(stepNo).padStart(2)}] ${text}`);
}

/**
 * A JSON call straight to the API, whatever the answer: `{status, headers,
 * body, text}`, body parsed as JSON (`{text}` when it is not JSON).
 */
export async function apiRaw(method, url, { token, body, headers = {} } = {}) {
  const h = { 'content-type': 'application/json', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const resp = await fetch(`${BASE}${url}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { text };
  }
  return { status: resp.status, headers: resp.headers, body: json, text };
}

/** A JSON call that must succeed (any 2xx, or exactly `expect`): its body. */
export async function apiCall(method, url, { expect, ...opts } = {}) {
  const { status, body, text } = await apiRaw(method, url, opts);
  if (expect !== undefined) {
    assert.equal(status, expect, `${method} ${url} → ${status}, not ${expect}: ${text}`);
  } else if (status < 200 || status > 299) {
    throw new Error(`${method} ${url} → ${status}: ${text}`);
  }
  return body;
}

/** What each test does with its page: find by test id, sign out, in and up, create an event. */
function pageHelpers(page) {
  const tid = (id) => page.getByTestId(id);

  /** Signs out, when signed in. */
  async function signOut() {
    if (await tid('nav-signout').count()) {
      await tid('nav-signout').click();
      await tid('nav-signin').waitFor();
    }
  }

  /** Signs out (when signed in) and sends the sign-in form, to land on route; waits for no answer. */
  async function trySignIn(who, password, route) {
    await signOut();
    await page.goto(`${BASE}/#/signin?next=${encodeURIComponent(route)}`);
    await tid('signin-email').fill(who);
    await tid('signin-password').fill(password);
    await tid('signin-submit').click();
  }

  /** Signs out (when signed in) and in as who, landing on route (e.g. '#/tickets'). */
  async function signIn(who, password, route) {
    await trySignIn(who, password, route);
    await page.waitForURL((url) => url.hash === route);
    await tid('whoami').filter({ hasText: who }).waitFor();
  }

  /** Signs out (when signed in) and up as a new customer, who is then signed in. */
  async function signUp(who, password) {
    await signOut();
    await page.goto(`${BASE}/#/signup`);
    await tid('signup-email').fill(who);
    await tid('signup-password').fill(password);
    await tid('signup-submit').click();
    await tid('whoami').filter({ hasText: who }).waitFor();
  }

  /**
   * Fills the event form (the admin page's, or New event's) without sending
   * it: `fields` by test id less `admin-` (name, venue, hold-seconds, …), then
   * `sections`, each `{name, price, rows, seatsPerRow}` (seated) or `{name,
   * price, capacity}` (general admission).
   */
  async function fillEventForm(fields, sections) {
    for (const [id, value] of Object.entries(fields)) await tid(`admin-${id}`).fill(String(value));
    for (const [i, s] of sections.entries()) {
      if (i > 0) await tid('admin-add-section').click();
      await tid(`section-name-${i}`).fill(s.name);
      await tid(`section-price-${i}`).fill(s.price);
      if (s.capacity === undefined) {
        await tid(`section-kind-${i}`).selectOption('seated');
        await tid(`section-rows-${i}`).fill(String(s.rows));
        await tid(`section-seats-per-row-${i}`).fill(String(s.seatsPerRow));
      } else {
        await tid(`section-kind-${i}`).selectOption('ga');
        await tid(`section-capacity-${i}`).fill(String(s.capacity));
      }
    }
  }

  /** Sends the filled event form: the event is created as a draft; its id. */
  async function createDraft() {
    await tid('admin-create').click();
    const created = tid('admin-created');
    await created.waitFor();
    const eventId = await created.getAttribute('data-event-id');
    assert.match(eventId, /^\d+$/);
    assert.equal(await tid('admin-status').textContent(), 'draft');
    return eventId;
  }

  return { tid, signOut, trySignIn, signIn, signUp, fillEventForm, createDraft };
}

/**
 * Runs one browser test: body gets `{context, page, tid, signOut, trySignIn,
 * signIn, signUp, fillEventForm, createDraft}` on a fresh Chromium profile
 * (`launch` adds to or overrides the options of launchPersistentContext,
 * e.g. `{acceptDownloads: true}`) and returns what the pass line names (an
 * event id, say). The test fails on an uncaught page error or a console
 * error, except "Failed to load resource", which the browser logs for every
 * API call answered with an error status, and each test provokes some (a
 * declined card's 402, a wrong password's 401, another organiser's 404). On a
 * failure: the step, the page's address, its error banner and problems, and a
 * full-page screenshot `failureShot` in ARTIFACTS; the exit status is 1.
 */
export async function browserTest({ name, failureShot, launch = {} }, body) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const profile = mkdtempSync(path.join(tmpdir(), 'stampede-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1180, height: 900 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    ...launch,
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught page error: ${e.message}`));
  page.on('console', (m) => {
    const t = m.text();
    if (m.type() === 'error' && !t.startsWith('Failed to load resource')) problems.push(`console error: ${t}`);
  });

  try {
    const passed = await body({ context, page, ...pageHelpers(page) });
    assert.deepEqual(problems, [], 'no page errors, no CSP violations');
    console.log(`${name} passed: ${passed}`);
  } catch (e) {
    const shot = path.join(ARTIFACTS, failureShot);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    const banner = await page.getByTestId('error-banner').textContent().catch(() => '');
    console.error(`${name} FAILED at step ${stepNo}: ${e.stack || e}`);
    console.error(`  page: ${page.url()}`);
    if (banner) console.error(`  error banner: ${banner}`);
    if (problems.length) console.error(`  page problems:\n    ${problems.join('\n    ')}`);
    console.error(`  screenshot: ${shot}`);
    process.exitCode = 1;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
