// The organisers' browser test: My events, the event form, an event's sales
// report (with its CSV download) and audit trail, and the admins' audit log,
// in headless Chromium (playwright-core) against a running stack through
// nginx. Run by scripts/browser-test after purchase.mjs.
//
//   STAMPEDE_WEB_URL            the stack's nginx (required)
//   STAMPEDE_ORGANISER_EMAIL    organiser A, role organiser on that stack (required)
//   STAMPEDE_ORGANISER_PASSWORD
//   STAMPEDE_ORGANISER2_EMAIL   organiser B, another organiser (required)
//   STAMPEDE_ORGANISER2_PASSWORD
//   STAMPEDE_ADMIN_EMAIL        an admin account (default: scripts/up's)
//   STAMPEDE_ADMIN_PASSWORD
//   STAMPEDE_ARTIFACTS          where screenshots go (default .run/artifacts)
//   STAMPEDE_CHROMIUM           the browser (default /usr/bin/chromium)
//
// Story: organiser A signs in, opens My events, follows New event, creates a
// draft with a seated and a general-admission section (the API lists it as a
// draft among A's managed events), publishes it, and My events lists it
// Published; a second draft, made with "Requires a verified e-mail to buy"
// (the API has verified_email_required), is listed Draft above it. A customer (through the API, to keep this quick: purchase.mjs
// covers buying in the browser) buys two seats and three standing places
// with the visa card and holds one more seat. A opens the event's manage
// page: the totals and each section's row show what was bought (Refresh until
// the revenue, which Postgres records a moment after the sale, is there) and
// agree with the API's report; Download CSV saves event-<id>-report.csv with
// the section rows and the same totals; the audit trail shows Published and
// Created, by "you" (A's id); A checks a ticket in (API) and the trail shows
// Checked in first; after 51 changes to the draft (through the
// API) its trail shows 50 entries and "Older entries" the other two; its
// Publish now publishes it.
// Organiser B: My events lists neither of A's events,
// and its manage page says Not found (the API: 404). A customer sees no My
// events link, and #/manage says "Only organisers and admins" (the API: 403).
// The admin opens the audit log from the admin page and finds A's
// event.create and event.publish. Screenshots: manage-events.png, report.png,
// audit.png, audit-log.png (organiser-failure.png when it fails).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ADMIN_EMAIL, ADMIN_PASSWORD, ARTIFACTS, BASE, apiCall, browserTest, requireEnv, run, step } from './harness.mjs';

const [A_EMAIL, A_PASSWORD, B_EMAIL, B_PASSWORD] = requireEnv(
  ['STAMPEDE_ORGANISER_EMAIL', 'STAMPEDE_ORGANISER_PASSWORD', 'STAMPEDE_ORGANISER2_EMAIL', 'STAMPEDE_ORGANISER2_PASSWORD'],
  'two accounts with role organiser; scripts/browser-test makes them');

/** The organisers' story, then B's, a customer's and the admin's view of it; the pass line names A's event. */
async function organiser({ page, tid, signIn, fillEventForm, createDraft }) {
  /** Waits until the router has rendered route (app.dataset.ready). */
  const ready = (route) => page.waitForFunction((r) => document.getElementById('app').dataset.ready === r, route);

  /** Signs in as another account and waits until route (e.g. '#/manage') is rendered. */
  async function switchUser(who, password, route) {
    await signIn(who, password, route);
    await ready(route);
  }

  const text = async (id, scope = page) => (await scope.getByTestId(id).textContent()).trim();

  const orgA = await apiCall('POST', '/api/auth/signin', { body: { email: A_EMAIL, password: A_PASSWORD } });
  const orgB = await apiCall('POST', '/api/auth/signin', { body: { email: B_EMAIL, password: B_PASSWORD } });
  assert.equal(orgA.user.role, 'organiser', 'organiser A has role organiser');
  assert.equal(orgB.user.role, 'organiser', 'organiser B has role organiser');

  // ---- organiser A creates and publishes an event -----------------------------
  step(`organiser A (${A_EMAIL}) signs in and opens My events from the nav`);
  await switchUser(A_EMAIL, A_PASSWORD, '#/');
  await tid('nav-manage').waitFor();
  assert.equal(await tid('nav-admin').isHidden(), true, 'no Admin link for an organiser');
  await tid('nav-manage').click();
  await ready('#/manage');
  assert.equal(await text('page-title'), 'My events');

  step('New event leads to the event form; create a draft with a seated and a general-admission section');
  await tid('new-event').click();
  await ready('#/manage/new');
  const eventName = `Organiser night ${run}`;
  await fillEventForm({ name: eventName, venue: 'Hall O', 'per-user-limit': 10 }, [
    { name: 'Stalls', price: '45.00', rows: 4, seatsPerRow: 6 },
    { name: 'Standing', price: '20', capacity: 50 },
  ]);
  assert.equal(await tid('admin-verified-email').isChecked(), false, 'verified e-mail not required by default');
  const eventId = await createDraft();
  const draft = await apiCall('GET', '/api/events?managed=true', { token: orgA.access_token });
  assert.equal(draft.events.find((e) => e.id === eventId)?.status, 'draft', 'the API lists the draft among A\'s managed events');
  const detail = await apiCall('GET', `/api/events/${eventId}`, { token: orgA.access_token });
  assert.equal(detail.verified_email_required, false);
  const stalls = detail.sections.find((s) => s.name === 'Stalls');
  const standing = detail.sections.find((s) => s.name === 'Standing');
  assert.ok(stalls && standing, JSON.stringify(detail.sections));

  step(`publish event ${eventId}; Manage this event links to its manage page`);
  await tid('admin-publish').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="admin-status"]')?.textContent === 'published');
  assert.equal(await tid('admin-manage-link').getAttribute('href'), `#/manage/${eventId}`);

  step('My events lists it Published, with its start time and links to its report and audit trail');
  await tid('nav-manage').click();
  await ready('#/manage');
  const row = page.locator(`[data-testid="managed-event"][data-event-id="${eventId}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-status'), 'published');
  assert.equal(await text('managed-status', row), 'Published');
  assert.equal(await text('managed-name', row), eventName);
  assert.equal(await row.locator('time').getAttribute('datetime'), detail.starts_at);
  assert.equal(await row.getByTestId('managed-report').getAttribute('href'), `#/manage/${eventId}`);
  assert.equal(await row.getByTestId('managed-audit').getAttribute('href'), `#/manage/${eventId}?show=audit`);

  step('New event again: a draft that requires a verified e-mail; My events lists it Draft, newest first');
  await tid('new-event').click();
  await ready('#/manage/new');
  await tid('admin-name').fill(`${eventName} (verified fans)`);
  await tid('admin-venue').fill('Hall O');
  await tid('admin-verified-email').check();
  const draftId = await createDraft();
  await tid('admin-verified-note').waitFor();
  assert.equal((await apiCall('GET', `/api/events/${draftId}`, { token: orgA.access_token })).verified_email_required, true);
  await tid('admin-manage-link').waitFor();
  await tid('nav-manage').click();
  await ready('#/manage');
  assert.deepEqual(await tid('managed-event').evaluateAll((rows) => rows.slice(0, 2).map((r) => [r.dataset.eventId, r.dataset.status])),
    [[draftId, 'draft'], [eventId, 'published']]);
  assert.equal(await text('managed-status', page.locator(`[data-testid="managed-event"][data-event-id="${draftId}"]`)), 'Draft');
  await page.screenshot({ path: path.join(ARTIFACTS, 'manage-events.png'), fullPage: true });

  // ---- a customer buys (through the API) -----------------------------------------
  step('a customer buys two seats and three standing places (visa card) and holds one more seat');
  const fanEmail = `fan-org-${run}@example.com`;
  const fan = await apiCall('POST', '/api/auth/signup', { body: { email: fanEmail, password: 'correct horse battery' } });
  const pay = (hold, key) => apiCall('POST', `/api/holds/${hold.id}/payment`, {
    token: fan.access_token, body: { payment_method: 'pm_card_visa' }, headers: { 'idempotency-key': `${key}-${run}` },
  });
  const seatsHold = await apiCall('POST', `/api/events/${eventId}/holds`, { token: fan.access_token, body: { seats: [`${stalls.id}:1:1`, `${stalls.id}:1:2`] } });
  await pay(seatsHold, 'org-seats');
  const gaHold = await apiCall('POST', `/api/events/${eventId}/holds`, { token: fan.access_token, body: { section_id: standing.id, quantity: 3 } });
  await pay(gaHold, 'org-ga');
  await apiCall('POST', `/api/events/${eventId}/holds`, { token: fan.access_token, body: { seats: [`${stalls.id}:2:1`] } });
  const expected = {
    sold: 5, held: 1, available: 24 + 50 - 6, revenue: 2 * 4500 + 3 * 2000,
    stalls: { capacity: 24, sold: 2, held: 1, available: 21, revenue: 9000 },
    standing: { capacity: 50, sold: 3, held: 0, available: 47, revenue: 6000 },
  };

  // ---- organiser A's manage page --------------------------------------------------
  step('A opens the report from My events: totals and sections match the purchase (Refresh until the revenue is in)');
  await row.getByTestId('managed-report').click();
  await ready(`#/manage/${eventId}`);
  assert.equal(await text('page-title'), eventName);
  assert.equal(await text('manage-status'), 'Published');
  for (let i = 0; ; i++) {
    if (await text('report-revenue') === '$150.00' && await text('report-sold') === '5') break;
    assert.ok(i < 20, `the report shows sold ${await text('report-sold')}, revenue ${await text('report-revenue')}`);
    await page.waitForTimeout(500);
    await tid('report-refresh').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid="report-refresh"]')?.disabled);
  }
  assert.equal(await text('report-sold'), String(expected.sold));
  assert.equal(await text('report-held'), String(expected.held));
  assert.equal(await text('report-available'), String(expected.available));
  assert.equal(await text('report-revenue'), '$150.00');
  assert.equal(await text('report-refunds'), '$0.00');
  const cells = async (locator) => Object.fromEntries(await Promise.all(['capacity', 'sold', 'held', 'available', 'revenue']
    .map(async (k) => [k, (await locator.locator(`[data-col="${k}"]`).textContent()).trim()])));
  const stallsRow = page.locator(`[data-testid="report-row"][data-section-id="${stalls.id}"]`);
  const standingRow = page.locator(`[data-testid="report-row"][data-section-id="${standing.id}"]`);
  assert.deepEqual(await cells(stallsRow), { capacity: '24', sold: '2', held: '1', available: '21', revenue: '$90.00' });
  assert.deepEqual(await cells(standingRow), { capacity: '50', sold: '3', held: '0', available: '47', revenue: '$60.00' });
  assert.deepEqual(await cells(tid('report-total-row')), { capacity: '74', sold: '5', held: '1', available: '68', revenue: '$150.00' });
  const report = await apiCall('GET', `/api/events/${eventId}/report`, { token: orgA.access_token });
  assert.equal(report.sold, expected.sold);
  assert.equal(report.held, expected.held);
  assert.equal(report.revenue_cents, expected.revenue);
  const apiSection = (id) => report.by_section.find((s) => s.section_id === id);
  for (const [sec, want] of [[stalls, expected.stalls], [standing, expected.standing]]) {
    const got = apiSection(sec.id);
    assert.deepEqual([got.capacity, got.sold, got.held, got.available, got.revenue_cents],
      [want.capacity, want.sold, want.held, want.available, want.revenue], `the API's report of ${sec.name}`);
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'report.png'), fullPage: true });

  step('Download CSV saves event-<id>-report.csv: the section rows and the same totals');
  const [download] = await Promise.all([page.waitForEvent('download'), tid('report-csv').click()]);
  assert.equal(download.suggestedFilename(), `event-${eventId}-report.csv`);
  const csv = readFileSync(await download.path(), 'utf8');
  const lines = csv.split(/\r?\n/).filter(Boolean);
  assert.equal(lines[0], 'section_id,name,capacity,sold,held,available,revenue_cents');
  const s = expected.stalls;
  const g = expected.standing;
  assert.ok(lines.includes(`${stalls.id},Stalls,${s.capacity},${s.sold},${s.held},${s.available},${s.revenue}`), csv);
  assert.ok(lines.includes(`${standing.id},Standing,${g.capacity},${g.sold},${g.held},${g.available},${g.revenue}`), csv);
  assert.ok(lines.includes(`total,,74,${expected.sold},${expected.held},${expected.available},${expected.revenue}`), csv);
  assert.ok(lines.includes('refunds,,,,,,0'), csv);

  step('the audit trail: Published, then Created, both by "you" (A)');
  const trail = tid('audit-trail');
  const entries = trail.getByTestId('audit-entry');
  await entries.first().waitFor();
  assert.deepEqual(await entries.evaluateAll((rows) => rows.map((r) => r.dataset.action)), ['event.publish', 'event.create']);
  for (const e of await entries.all()) {
    assert.equal(await e.getAttribute('data-actor'), orgA.user.id);
    assert.equal(await text('audit-who', e), 'you');
  }
  assert.equal(await text('audit-action', entries.nth(0)), 'Published');
  assert.equal(await text('audit-details', entries.nth(0)), 'Draft → Published (version 2)');
  assert.equal(await text('audit-action', entries.nth(1)), 'Created');
  assert.match(await text('audit-details', entries.nth(1)), new RegExp(`^“${eventName}” at Hall O · starts .* · sections: Stalls \\(4×6 seats, \\$45\\.00\\); Standing \\(50 standing, \\$20\\.00\\)$`));
  assert.equal(await trail.getByTestId('audit-older').isHidden(), true, 'two entries: no older page');

  step('A checks in one of the customer\'s seated tickets (API); the trail shows Checked in, by you, first');
  const fanTickets = (await apiCall('GET', '/api/tickets', { token: fan.access_token })).tickets;
  const seated = fanTickets.find((t) => t.event_id === eventId && t.seat === `${stalls.id}:1:1`);
  assert.ok(seated, JSON.stringify(fanTickets));
  const { code } = await apiCall('GET', `/api/tickets/${seated.id}/code`, { token: fan.access_token });
  await apiCall('POST', `/api/events/${eventId}/check-in`, { token: orgA.access_token, body: { code } });
  for (let i = 0; ; i++) {
    // The persister writes the entry a moment after the check-in.
    await page.reload();
    await ready(`#/manage/${eventId}`);
    await entries.first().waitFor();
    if (await entries.first().getAttribute('data-action') === 'ticket.check_in') break;
    assert.ok(i < 20, 'the check-in reaches the audit trail');
    await page.waitForTimeout(500);
  }
  assert.equal(await text('audit-action', entries.first()), 'Checked in');
  assert.equal(await text('audit-who', entries.first()), 'you');
  assert.equal(await text('audit-details', entries.first()), `Ticket ${seated.id} · Row 1, seat 1 · by the organiser`);
  assert.equal(await entries.count(), 3);

  step('the Audit trail link of My events lands on the trail');
  await tid('to-my-events').click();
  await ready('#/manage');
  await row.getByTestId('managed-audit').click();
  await ready(`#/manage/${eventId}?show=audit`);
  await page.waitForFunction(() => document.activeElement?.id === 'audit-heading');
  await trail.screenshot({ path: path.join(ARTIFACTS, 'audit.png') });

  step('the draft\'s trail, 52 entries after 51 changes (API PATCH): 50 shown, Older entries shows the rest');
  const CHANGES = 51;
  for (let v = 1; v <= CHANGES; v++) {
    await apiCall('PATCH', `/api/events/${draftId}`, { token: orgA.access_token, headers: { 'if-match': String(v) }, body: { venue: `Hall ${v}` } });
  }
  await page.goto(`${BASE}/#/manage/${draftId}?show=audit`);
  await ready(`#/manage/${draftId}?show=audit`);
  assert.equal(await text('manage-status'), 'Draft');
  assert.equal(await entries.count(), 50, 'a page is 50 entries');
  assert.equal(await text('audit-action', entries.nth(0)), 'Changed');
  assert.equal(await text('audit-details', entries.nth(0)), `venue: Hall ${CHANGES - 1} → Hall ${CHANGES}`);
  await trail.getByTestId('audit-older').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="audit-entry"]').length === 52);
  assert.equal(await trail.getByTestId('audit-older').isHidden(), true, 'no older page after the last');
  assert.equal(await text('audit-action', entries.nth(51)), 'Created');
  assert.equal(await text('audit-details', entries.nth(50)), 'venue: Hall O → Hall 1');
  const ids = await entries.evaluateAll((rows) => rows.map((r) => Number(r.dataset.entryId)));
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first, no entry twice');
  assert.equal(new Set(ids).size, 52);

  step('Publish now on the draft\'s manage page: Published, and the trail starts with it');
  await tid('manage-publish').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="manage-status"]')?.textContent === 'Published');
  await entries.first().waitFor();
  assert.equal(await entries.first().getAttribute('data-action'), 'event.publish');
  assert.equal(await text('audit-details', entries.first()), `Draft → Published (version ${CHANGES + 2})`);
  assert.equal(await tid('manage-publish').count(), 0);
  assert.equal((await apiCall('GET', `/api/events/${draftId}`)).status, 'published', 'public now');

  // ---- organiser B -------------------------------------------------------------------
  step(`organiser B (${B_EMAIL}): My events lists neither of A's events; the published one's manage page says Not found`);
  await switchUser(B_EMAIL, B_PASSWORD, '#/manage');
  assert.equal(await text('page-title'), 'My events');
  for (const id of [eventId, draftId]) {
    assert.equal(await page.locator(`[data-testid="managed-event"][data-event-id="${id}"]`).count(), 0);
  }
  const theirs = await apiCall('GET', '/api/events?managed=true', { token: orgB.access_token });
  assert.ok(!theirs.events.some((e) => e.id === eventId || e.id === draftId), 'the API does not list A\'s events for B');
  await page.goto(`${BASE}/#/manage/${eventId}`);
  await ready(`#/manage/${eventId}`);
  assert.equal(await text('page-title'), 'Not found');
  await tid('manage-not-found').waitFor();
  await apiCall('GET', `/api/events/${eventId}/report`, { token: orgB.access_token, expect: 404 });
  await apiCall('GET', `/api/events/${eventId}/audit`, { token: orgB.access_token, expect: 404 });

  // ---- a customer --------------------------------------------------------------------
  step('the customer: no My events link; #/manage says Only organisers and admins');
  await switchUser(fanEmail, 'correct horse battery', '#/');
  assert.equal(await tid('nav-manage').isHidden(), true);
  await page.goto(`${BASE}/#/manage`);
  await ready('#/manage');
  assert.match(await text('manage-forbidden'), /^Only organisers and admins/);
  await page.goto(`${BASE}/#/manage/${eventId}`);
  await ready(`#/manage/${eventId}`);
  assert.match(await text('manage-forbidden'), /^Only organisers and admins/);
  await apiCall('GET', '/api/events?managed=true', { token: fan.access_token, expect: 403 });
  await apiCall('GET', `/api/events/${eventId}/report`, { token: fan.access_token, expect: 403 });

  // ---- the admin -----------------------------------------------------------------------
  step('the admin opens the audit log from the admin page: A\'s event.create and event.publish');
  await switchUser(ADMIN_EMAIL, ADMIN_PASSWORD, '#/admin');
  await tid('admin-audit-link').click();
  await ready('#/admin/audit');
  assert.equal(await text('page-title'), 'Audit log');
  const ofEvent = page.locator(`[data-testid="audit-entry"][data-target="event:${eventId}"]`);
  for (let i = 0; (await ofEvent.count()) < 2; i++) {
    // Newest first: other entries written since would push A's onto an older page.
    assert.ok(i < 10 && (await tid('audit-older').isVisible()), 'A\'s entries are in the audit log');
    await tid('audit-older').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid="audit-older"]')?.disabled);
  }
  assert.deepEqual(await ofEvent.evaluateAll((rows) => rows.map((r) => [r.dataset.action, r.dataset.actor])),
    [['event.publish', orgA.user.id], ['event.create', orgA.user.id]]);
  assert.equal(await text('audit-who', ofEvent.nth(0)), `user ${orgA.user.id}`);
  assert.equal(await text('audit-action', ofEvent.nth(0)), 'Published');
  await page.screenshot({ path: path.join(ARTIFACTS, 'audit-log.png'), fullPage: true });

  return `event ${eventId}`;
}

await browserTest({ name: 'organiser browser test', failureShot: 'organiser-failure.png', launch: { acceptDownloads: true } }, organiser);
