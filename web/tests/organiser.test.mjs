// Unit tests of the organiser pages' DOM-free helpers (web/js/organiserpages.js):
// `node --test web/tests/`.
import test from 'node:test';
import assert from 'node:assert/strict';

import { createApi, ApiError } from '../js/api.js';
import { formatTime, eventBody } from '../js/format.js';
import {
  canManage, eventStatusText, auditActionText, auditWho, targetEventId, auditDetailsText, auditRow,
  reportRows, reportTotals, csvFileName, manageFailure, managedEventsPath, auditPath,
} from '../js/organiserpages.js';

const CREATED = {
  id: '12', at: '2026-12-07T00:10:00.123Z', actor_id: '7', action: 'event.create', target: 'event:42',
  details: {
    after: {
      id: '42', name: 'Night at the hall', venue: 'Hall B', starts_at: '2027-01-06T19:30:00.000Z', status: 'draft', version: 1,
      sections: [
        { id: '1', name: 'Stalls', price_cents: 4500, general_admission: false, rows: 6, seats_per_row: 12, capacity: 72, available: 72 },
        { id: '2', name: 'Standing', price_cents: 2000, general_admission: true, capacity: 100, available: 100 },
      ],
    },
  },
};
const PUBLISHED = {
  id: '13', at: '2026-12-07T00:11:00.000Z', actor_id: '7', action: 'event.publish', target: 'event:42',
  details: { before: { status: 'draft', version: 1 }, after: { status: 'published', version: 2 } },
};

const REPORT = {
  event_id: '42', status: 'published', sold: 5, held: 2, available: 165, revenue_cents: 17500, refunds_cents: 0, resale_cents: 4000,
  by_section: [
    { section_id: '1', name: 'Stalls', capacity: 72, sold: 3, held: 2, available: 67, revenue_cents: 13500 },
    { section_id: '2', name: 'Standing', capacity: 100, sold: 2, held: 0, available: 98, revenue_cents: 4000 },
  ],
};

function problem(status, code) {
  return new ApiError({ status, code, detail: code, body: { code } });
}

test('organisers and admins manage events; customers, gates and nobody do not', () => {
  assert.equal(canManage({ role: 'organiser' }), true);
  assert.equal(canManage({ role: 'admin' }), true);
  assert.equal(canManage({ role: 'customer' }), false);
  assert.equal(canManage({ role: 'gate' }), false);
  assert.equal(canManage(null), false);
});

test('statuses and actions read as words', () => {
  assert.equal(eventStatusText('draft'), 'Draft');
  assert.equal(eventStatusText('published'), 'Published');
  assert.equal(auditActionText('event.create'), 'Created');
  assert.equal(auditActionText('event.update'), 'Changed');
  assert.equal(auditActionText('event.publish'), 'Published');
  assert.equal(auditActionText('ticket.check_in'), 'Checked in');
  assert.equal(auditActionText('user.role'), 'Role changed');
  assert.equal(auditActionText('payment.refund'), 'payment refund', 'an action this client does not know: its name in plain letters');
});

test('who acted: you, another user, or the command line', () => {
  assert.equal(auditWho({ actor_id: '7' }, { id: '7' }), 'you');
  assert.equal(auditWho({ actor_id: '7' }, { id: 7 }), 'you', 'ids compare as text');
  assert.equal(auditWho({ actor_id: '8' }, { id: '7' }), 'user 8');
  assert.equal(auditWho({ actor_id: '8' }, null), 'user 8');
  assert.equal(auditWho({ actor_id: null }, { id: '7' }), 'the command line');
});

test('targets name their event', () => {
  assert.equal(targetEventId('event:42'), '42');
  assert.equal(targetEventId('user:7'), null);
  assert.equal(targetEventId('event:42x'), null);
  assert.equal(targetEventId(undefined), null);
});

test('a created event: its name, venue, start and sections', () => {
  const text = auditDetailsText(CREATED);
  assert.equal(text, `“Night at the hall” at Hall B · starts ${formatTime('2027-01-06T19:30:00.000Z')} · sections: Stalls (6×12 seats, $45.00); Standing (100 standing, $20.00)`);
});

test('a publication: draft → published with the version', () => {
  assert.equal(auditDetailsText(PUBLISHED), 'Draft → Published (version 2)');
});

test('an update names only the fields that changed', () => {
  const before = { ...CREATED.details.after, per_user_limit: 4, waiting_room: false };
  const after = { ...before, venue: 'Hall C', per_user_limit: 6, waiting_room: true, version: 2 };
  const text = auditDetailsText({ action: 'event.update', details: { before, after } });
  assert.equal(text, 'venue: Hall B → Hall C · per-customer limit: 4 → 6 · waiting room: no → yes');
  const moved = auditDetailsText({ action: 'event.update', details: { before, after: { ...before, starts_at: '2027-02-01T20:00:00.000Z' } } });
  assert.equal(moved, `start time: ${formatTime(before.starts_at)} → ${formatTime('2027-02-01T20:00:00.000Z')}`);
  const sections = auditDetailsText({ action: 'event.update', details: { before, after: { ...before, sections: before.sections.slice(0, 1) } } });
  assert.equal(sections, 'sections: Stalls (6×12 seats, $45.00)');
  assert.equal(auditDetailsText({ action: 'event.update', details: { before, after: before } }), 'no visible change');
});

test('a role change, a check-in and odd details', () => {
  assert.equal(auditDetailsText({ action: 'user.role', target: 'user:9', details: { before: { role: 'customer' }, after: { role: 'organiser' } } }),
    'user 9: customer → organiser');
  assert.equal(auditDetailsText({
    action: 'ticket.check_in', target: 'ticket:42-abc-1',
    details: { role: 'organiser', owner_id: 9, section_id: 1, seat: '1:2:3', version: 1 },
  }), 'Ticket 42-abc-1 · Row 2, seat 3 · by the organiser');
  assert.equal(auditDetailsText({
    action: 'ticket.check_in', target: 'ticket:42-abc-2', details: { role: 'admin', owner_id: 9, section_id: 2, seat: null, version: 1 },
  }), 'Ticket 42-abc-2 · general admission · by the admin');
  assert.equal(auditDetailsText({ action: 'payment.refund', details: { amount_cents: 4500, order: '42-abc', full: true, nested: { x: 1 } } }),
    'amount cents: 4500 · order: 42-abc · full: yes', 'an action this client does not know: its plain fields');
  assert.equal(auditDetailsText({ action: 'event.create', details: null }), '');
  assert.equal(auditDetailsText({ action: 'event.update', details: 'x' }), '');
  assert.equal(auditDetailsText(null), '');
});

test('an audit row as the list shows it', () => {
  const r = auditRow(PUBLISHED, { id: '7' });
  assert.deepEqual(r, {
    id: '13', at: PUBLISHED.at, when: formatTime(PUBLISHED.at), who: 'you', action: 'Published',
    details: 'Draft → Published (version 2)', target: 'event:42', eventId: '42',
  });
  assert.equal(auditRow({ ...PUBLISHED, actor_id: '8' }, { id: '7' }).who, 'user 8');
});

test('the report table: a row per section and the totals', () => {
  const { rows, total } = reportRows(REPORT);
  assert.deepEqual(rows.map((r) => [r.id, r.name, r.capacity, r.sold, r.held, r.available, r.revenue]), [
    ['1', 'Stalls', 72, 3, 2, 67, '$135.00'],
    ['2', 'Standing', 100, 2, 0, 98, '$40.00'],
  ]);
  assert.deepEqual(total, { id: 'total', name: 'Total', capacity: 172, sold: 5, held: 2, available: 165, revenue_cents: 17500, revenue: '$175.00' });
  assert.deepEqual(reportRows({ ...REPORT, by_section: [] }).rows, []);
});

test('the report totals, in order', () => {
  assert.deepEqual(reportTotals(REPORT).map((t) => [t.key, t.label, t.value]), [
    ['sold', 'Sold', '5'], ['held', 'Held', '2'], ['available', 'Available', '165'],
    ['revenue', 'Revenue', '$175.00'], ['refunds', 'Refunds', '$0.00'], ['resale', 'Resold by fans', '$40.00'],
  ]);
  const { resale_cents: _, ...older } = REPORT;
  assert.equal(reportTotals(older).length, 5, 'no resale line when the API has none');
});

test('the CSV file is named after its event, safely', () => {
  assert.equal(csvFileName('42'), 'event-42-report.csv');
  assert.equal(csvFileName(42), 'event-42-report.csv');
  assert.equal(csvFileName('../4 2'), 'event-42-report.csv');
  assert.equal(csvFileName(''), 'event-unknown-report.csv');
});

test('404 is not found, 403 forbidden, anything else is an error', () => {
  assert.equal(manageFailure(problem(404, 'not_found')), 'not-found');
  assert.equal(manageFailure(problem(403, 'forbidden')), 'forbidden');
  assert.equal(manageFailure(problem(500, 'internal')), null);
  assert.equal(manageFailure(new Error('x')), null);
});

test('paths: managed events and audit pages, with cursors', () => {
  assert.equal(managedEventsPath(null), '/api/events?managed=true');
  assert.equal(managedEventsPath('a b'), '/api/events?managed=true&cursor=a%20b');
  assert.equal(auditPath('42', null), '/api/events/42/audit');
  assert.equal(auditPath('42', '17'), '/api/events/42/audit?cursor=17');
  assert.equal(auditPath(null, null), '/api/admin/audit');
  assert.equal(auditPath(null, '17'), '/api/admin/audit?cursor=17');
});

test('My events against a stub of GET /api/events?managed=true: the bearer token goes along', async () => {
  const m = new Map([['stampede.session', JSON.stringify({ access_token: 'A1', refresh_token: 'R1', user: { id: '7', role: 'organiser' } })]]);
  const storage = { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v), removeItem: (k) => m.delete(k) };
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, auth: init.headers.authorization });
    const body = { events: [{ id: '42', name: 'Night', status: 'draft' }], next_cursor: null };
    return { status: 200, ok: true, text: async () => JSON.stringify(body) };
  };
  const api = createApi({ fetch, storage, sleep: async () => {} });
  const data = await api.get(managedEventsPath(null));
  assert.equal(data.events[0].status, 'draft');
  assert.deepEqual(calls, [{ url: '/api/events?managed=true', auth: 'Bearer A1' }]);
});

test('the event form sends verified_email_required only when ticked', () => {
  const form = {
    name: ' Night ', venue: 'Hall', starts_at: '2027-01-06T19:30', sale_starts_at: '2026-12-01T10:00', hold_seconds: '300', per_user_limit: '4',
    waiting_room: false, verified_email_required: true,
    sections: [{ name: 'Stalls', price: '45', kind: 'seated', rows: '6', seats_per_row: '12', capacity: '' }],
  };
  assert.equal(eventBody(form).verified_email_required, true);
  assert.equal('verified_email_required' in eventBody({ ...form, verified_email_required: false }), false);
});
