// Unit tests of the web client's DOM-free modules: `node --test web/tests/`.
import test from 'node:test';
import assert from 'node:assert/strict';

import { createApi, ApiError, newIdempotencyKey } from '../js/api.js';
import {
  formatCents, parseMoneyToCents, formatCountdown, spokenCountdown, localInputToIso, dateToLocalInput,
  parseSeatId, seatLabel, groupRows, countStatuses, pruneSelection, eventBody, seatsFromRows,
} from '../js/format.js';

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
  };
}

function response(status, body, contentType = 'application/json') {
  const text = body === undefined ? '' : JSON.stringify(body);
  return { status, ok: status >= 200 && status < 300, statusText: '', text: async () => text, headers: { get: () => contentType } };
}

/** A fake fetch answering from a list of handlers, recording every call. */
function fakeFetch(handler) {
  const calls = [];
  const f = async (url, init) => {
    const call = { url, method: init.method, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(call);
    return handler(call, calls);
  };
  f.calls = calls;
  return f;
}

const noSleep = async () => {};

test('problem+json errors carry status, code and detail', async () => {
  const fetch = fakeFetch(() => response(402, { type: 'x', title: 'Payment Required', status: 402, detail: 'payment declined: card_declined; the hold is kept', code: 'declined' }));
  const api = createApi({ fetch, storage: memoryStorage(), sleep: noSleep });
  await assert.rejects(api.post('/api/holds/1-x/payment', {}), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 402);
    assert.equal(e.code, 'declined');
    assert.equal(e.detail, 'payment declined: card_declined; the hold is kept');
    assert.equal(e.transient, false);
    return true;
  });
});

test('sign-in stores the tokens and later calls send them as Bearer', async () => {
  const fetch = fakeFetch((c) => {
    if (c.url === '/api/auth/signin') return response(200, { user: { id: '1', email: 'a@b.c', role: 'customer' }, access_token: 'A1', refresh_token: 'R1', expires_in: 900 });
    return response(200, { id: '1' });
  });
  const storage = memoryStorage();
  const api = createApi({ fetch, storage, sleep: noSleep });
  const user = await api.signIn('a@b.c', 'hunter2hunter2');
  assert.equal(user.email, 'a@b.c');
  assert.equal(fetch.calls[0].headers.authorization, undefined);
  await api.get('/api/auth/me');
  assert.equal(fetch.calls[1].headers.authorization, 'Bearer A1');
  assert.equal(api.session.get().refresh_token, 'R1');
});

test('a 401 refreshes once and retries with the new token', async () => {
  const storage = memoryStorage();
  const fetch = fakeFetch((c) => {
    if (c.url === '/api/auth/refresh') {
      assert.deepEqual(c.body, { refresh_token: 'R1' });
      return response(200, { user: { id: '1', email: 'a@b.c', role: 'customer' }, access_token: 'A2', refresh_token: 'R2', expires_in: 900 });
    }
    return c.headers.authorization === 'Bearer A2' ? response(200, { orders: [] }) : response(401, { detail: 'expired', code: 'unauthorized' });
  });
  const api = createApi({ fetch, storage, sleep: noSleep });
  api.session.set({ access_token: 'A1', refresh_token: 'R1', user: { email: 'a@b.c' } });
  // Two calls at once share one refresh: a second refresh would spend R1 twice
  // and revoke the whole token family.
  const [a, b] = await Promise.all([api.get('/api/orders'), api.get('/api/orders')]);
  assert.deepEqual(a, { orders: [] });
  assert.deepEqual(b, { orders: [] });
  assert.equal(fetch.calls.filter((c) => c.url === '/api/auth/refresh').length, 1);
  assert.equal(api.session.get().access_token, 'A2');
  assert.equal(api.session.get().refresh_token, 'R2');
});

test('a failed refresh signs out and surfaces the 401, without looping', async () => {
  let signedOut = 0;
  const fetch = fakeFetch((c) =>
    c.url === '/api/auth/refresh' ? response(401, { detail: 'invalid refresh token', code: 'unauthorized' }) : response(401, { detail: 'token expired', code: 'unauthorized' }));
  const api = createApi({ fetch, storage: memoryStorage(), sleep: noSleep, onSignedOut: () => signedOut++ });
  api.session.set({ access_token: 'A1', refresh_token: 'R1' });
  await assert.rejects(api.get('/api/orders'), (e) => e.status === 401 && e.detail === 'token expired');
  assert.equal(fetch.calls.length, 2);
  assert.equal(api.session.get(), null);
  assert.equal(signedOut, 1);
});

test('idempotent calls reuse one key across network retries', async () => {
  let n = 0;
  const fetch = fakeFetch(() => {
    n += 1;
    if (n === 1) throw new TypeError('Failed to fetch');
    if (n === 2) return response(503, { detail: 'retry shortly', code: 'service_unavailable' });
    return response(201, { order: { id: '5-abc' } });
  });
  const api = createApi({ fetch, storage: memoryStorage(), sleep: noSleep });
  const out = await api.idempotent('POST', '/api/holds/5-x/payment', { body: { payment_method: 'pm_card_visa' }, key: 'k-1' });
  assert.equal(out.order.id, '5-abc');
  assert.deepEqual(fetch.calls.map((c) => c.headers['idempotency-key']), ['k-1', 'k-1', 'k-1']);
});

test('idempotent calls do not retry a final answer', async () => {
  const fetch = fakeFetch(() => response(402, { detail: 'declined', code: 'declined' }));
  const api = createApi({ fetch, storage: memoryStorage(), sleep: noSleep });
  await assert.rejects(api.idempotent('POST', '/p', { body: {} }), (e) => e.code === 'declined');
  assert.equal(fetch.calls.length, 1);
  const k1 = fetch.calls[0].headers['idempotency-key'];
  await assert.rejects(api.idempotent('POST', '/p', { body: {} }));
  assert.notEqual(fetch.calls[1].headers['idempotency-key'], k1, 'a new attempt gets a new key');
});

test('non-JSON error bodies still give a detail', async () => {
  const fetch = fakeFetch(() => ({ status: 502, ok: false, statusText: 'Bad Gateway', text: async () => '<html>bad</html>' }));
  const api = createApi({ fetch, storage: memoryStorage(), sleep: noSleep });
  await assert.rejects(api.get('/x'), (e) => e.status === 502 && e.detail.includes('bad') && e.transient);
});

test('idempotency keys fit the services\' token rule', () => {
  for (let i = 0; i < 20; i++) assert.match(newIdempotencyKey(), /^[A-Za-z0-9_-]{1,128}$/);
  assert.match(newIdempotencyKey({ getRandomValues: (a) => a.fill(7) }), /^[0-9a-f]{32}$/);
});

test('money', () => {
  assert.equal(formatCents(8000), '$80.00');
  assert.equal(formatCents(25050), '$250.50');
  assert.equal(parseMoneyToCents('45'), 4500);
  assert.equal(parseMoneyToCents('$12.5'), 1250);
  assert.equal(parseMoneyToCents('0.99'), 99);
  assert.ok(Number.isNaN(parseMoneyToCents('12,50')));
  assert.ok(Number.isNaN(parseMoneyToCents('')));
});

test('countdowns', () => {
  assert.equal(formatCountdown(600_000), '10:00');
  assert.equal(formatCountdown(65_001), '1:06');
  assert.equal(formatCountdown(3_723_000), '1:02:03');
  assert.equal(formatCountdown(-5), '0:00');
  assert.equal(spokenCountdown(125_000), '2 minutes 5 seconds left to pay.');
  assert.equal(spokenCountdown(60_000), '1 minute left to pay.');
  assert.equal(spokenCountdown(0), 'The hold has expired.');
});

test('datetime-local values round-trip to RFC 3339 UTC', () => {
  const d = new Date(2030, 0, 2, 20, 30);
  const local = dateToLocalInput(d);
  assert.match(local, /^2030-01-02T20:30$/);
  assert.equal(localInputToIso(local), d.toISOString().replace('.000Z', 'Z'));
  assert.equal(localInputToIso(''), null);
  assert.equal(localInputToIso('nope'), null);
});

test('seat ids and rows', () => {
  assert.deepEqual(parseSeatId('12:3:7'), { section: '12', row: 3, number: 7 });
  assert.equal(parseSeatId('x'), null);
  assert.equal(seatLabel('12:3:7'), 'Row 3, seat 7');
  const seats = [
    { id: '1:2:2', row: 2, number: 2, status: 'free' },
    { id: '1:1:2', row: 1, number: 2, status: 'held' },
    { id: '1:2:1', row: 2, number: 1, status: 'sold' },
    { id: '1:1:1', row: 1, number: 1, status: 'free' },
  ];
  const rows = groupRows(seats);
  assert.deepEqual(rows.map((r) => [r.row, r.seats.map((s) => s.number)]), [[1, [1, 2]], [2, [1, 2]]]);
  assert.deepEqual(countStatuses(seats), { free: 2, held: 1, sold: 1 });
  const selected = new Set(['1:1:1', '1:1:2', '9:9:9']);
  assert.deepEqual(pruneSelection(selected, seats), ['1:1:2']);
  assert.deepEqual([...selected], ['1:1:1', '9:9:9']);
});

test('a compact seat map becomes the seats the map draws', () => {
  const map = { section_id: '7', general_admission: false, available: 2, as_of: '2030-01-01T00:00:00.000Z',
    rows: [{ row: 1, statuses: 'fhs' }, { row: 2, statuses: 'fx' }] };
  assert.deepEqual(seatsFromRows(map), [
    { id: '7:1:1', row: 1, number: 1, status: 'free' },
    { id: '7:1:2', row: 1, number: 2, status: 'held' },
    { id: '7:1:3', row: 1, number: 3, status: 'sold' },
    { id: '7:2:1', row: 2, number: 1, status: 'free' },
    { id: '7:2:2', row: 2, number: 2, status: 'held' },
  ]);
  assert.deepEqual(seatsFromRows({ section_id: '8', general_admission: true, available: 40, rows: [] }), []);
});

test('the admin form becomes the API\'s create body', () => {
  const body = eventBody({
    name: ' Launch night ', venue: 'Hall A', starts_at: '2030-01-01T20:00:00Z', sale_starts_at: '2020-01-01T00:00:00Z',
    hold_seconds: '120', per_user_limit: '',
    sections: [
      { name: 'VIP', price: '250.00', kind: 'seated', rows: '10', seats_per_row: '20', capacity: '500' },
      { name: 'Floor', price: '80', kind: 'ga', rows: '10', seats_per_row: '20', capacity: '5000' },
    ],
  });
  assert.deepEqual(body, {
    name: 'Launch night', venue: 'Hall A', starts_at: '2030-01-01T20:00:00Z', sale_starts_at: '2020-01-01T00:00:00Z',
    hold_seconds: 120,
    sections: [
      { name: 'VIP', price_cents: 25000, rows: 10, seats_per_row: 20 },
      { name: 'Floor', price_cents: 8000, general_admission: true, capacity: 5000 },
    ],
  });
  const queued = eventBody({
    name: 'Tour', venue: 'Arena', starts_at: '2030-01-01T20:00:00Z', sale_starts_at: '2020-01-01T00:00:00Z',
    hold_seconds: '', per_user_limit: '2', waiting_room: true,
    sections: [{ name: 'Floor', price: '80', kind: 'ga', capacity: '10' }],
  });
  assert.equal(queued.waiting_room, true);
  assert.equal(queued.per_user_limit, 2);
  assert.equal('hold_seconds' in queued, false);
});
