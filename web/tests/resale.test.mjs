// Unit tests of web/js/resale.js (resale at face value, DOM-free):
// `node --test web/tests/`.
import test from 'node:test';
import assert from 'node:assert/strict';

import { ApiError } from '../js/api.js';
import {
  faceValueCents, centsToInput, checkListingPrice, listingPlace, listingView, listingsKey, findListing,
  rememberedListings, rememberListing, forgetListings, listingErrorText, withdrawErrorText, buyErrorText,
} from '../js/resale.js';

const EVENT = {
  id: '7',
  sections: [
    { id: '3', name: 'Stalls', price_cents: 4500, general_admission: false },
    { id: '4', name: 'Standing', price_cents: 2000, general_admission: true },
    { id: '5', name: 'Guest list', price_cents: 0, general_admission: true },
  ],
};

function problem(status, body) {
  return new ApiError({ status, code: body.code, detail: body.detail, title: body.title, body });
}

function fakeStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    size: () => m.size,
  };
}

test('the face value is the ticket\'s section price on the event, when the page knows it', () => {
  assert.equal(faceValueCents({ section_id: '3', seat: '3:1:2' }, EVENT), 4500);
  assert.equal(faceValueCents({ section_id: '4', seat: null }, EVENT), 2000);
  assert.equal(faceValueCents({ seat: '3:2:9' }, EVENT), 4500, 'the section from the seat id');
  assert.equal(faceValueCents({ section_id: 5, seat: null }, EVENT), 0, 'ids compared as strings');
  assert.equal(faceValueCents({ section_id: '9', seat: null }, EVENT), null, 'an unknown section');
  assert.equal(faceValueCents({ section_id: '3' }, null), null, 'no event');
  assert.equal(faceValueCents(null, EVENT), null);
});

test('cents become the price field\'s text without float rounding', () => {
  assert.equal(centsToInput(4500), '45.00');
  assert.equal(centsToInput(1005), '10.05');
  assert.equal(centsToInput(7), '0.07');
  assert.equal(centsToInput(0), '0.00');
});

test('an asking price is dollars and cents above zero, at most the face value', () => {
  assert.deepEqual(checkListingPrice('40', 4500), { cents: 4000 });
  assert.deepEqual(checkListingPrice(' $39.5 ', 4500), { cents: 3950 });
  assert.deepEqual(checkListingPrice('45.00', 4500), { cents: 4500 }, 'the face value itself');
  assert.deepEqual(checkListingPrice('45.01', 4500), { error: 'Resale is at face value or less: at most $45.00.' });
  assert.deepEqual(checkListingPrice('500', null), { cents: 50000 }, 'unknown face value: the server decides');
  for (const bad of ['', '0', '0.00', '-5', 'abc', '4.555', '1e3', '12,50']) {
    assert.match(checkListingPrice(bad, 4500).error, /above zero/, bad);
  }
  assert.match(checkListingPrice('99999999999999999999', null).error, /above zero/, 'not a safe integer');
  assert.match(checkListingPrice('1', 0).error, /free/);
});

test('a listing reads as its place and price', () => {
  assert.equal(listingPlace({ section_id: '3', seat: '3:1:2' }, EVENT), 'Stalls · Row 1, seat 2');
  assert.equal(listingPlace({ section_id: '4', seat: null }, EVENT), 'Standing · general admission');
  assert.equal(listingPlace({ section_id: '9', seat: null }, EVENT), 'Section 9 · general admission');
  assert.equal(listingPlace({ seat: '3:4:5' }, null), 'Section 3 · Row 4, seat 5');
  const view = listingView({
    id: 12, ticket_id: '7-0123456789abcdef0123456789abcdef-1', event_id: '7', section_id: '3', seat: '3:3:6',
    price_cents: 4000, status: 'open', created_at: '2030-01-01T00:00:00Z',
  }, EVENT);
  assert.deepEqual(view, {
    id: '12', ticketId: '7-0123456789abcdef0123456789abcdef-1', place: 'Stalls · Row 3, seat 6', priceCents: 4000, priceText: '$40.00',
  });
  assert.equal(listingsKey([{ id: '1', price_cents: 100 }, { id: '2', price_cents: 200 }]), '1@100,2@200');
  assert.notEqual(listingsKey([{ id: '1', price_cents: 100 }]), listingsKey([{ id: '1', price_cents: 90 }]));
  assert.equal(listingsKey(undefined), '');
});

test('a listed ticket\'s listing: on the ticket, among the open listings, then remembered', () => {
  const t = { id: 'T1', status: 'listed' };
  assert.deepEqual(findListing({ ...t, listing: { id: 5, price_cents: 300 } }), { id: '5', price_cents: 300 });
  assert.deepEqual(findListing({ ...t, listing_id: '6', price_cents: 400 }), { id: '6', price_cents: 400 });
  const listings = [{ id: 'L2', ticket_id: 'T2', price_cents: 100 }, { id: 'L1', ticket_id: 'T1', price_cents: 200 }];
  assert.deepEqual(findListing(t, { listings, remembered: { T1: { id: 'old', price_cents: 1 } } }), { id: 'L1', price_cents: 200 });
  assert.deepEqual(findListing(t, { listings: [], remembered: { T1: { id: 'L9', price_cents: 900 } } }), { id: 'L9', price_cents: 900 });
  assert.equal(findListing(t, { listings: [], remembered: {} }), null, 'held by a buyer and not made here');
  assert.equal(findListing(t), null);
  assert.equal(findListing(null), null);
});

test('the listings this browser made are remembered per ticket and forgotten once not listed', () => {
  const s = fakeStorage();
  assert.deepEqual(rememberedListings(s), {});
  rememberListing(s, { id: 'L1', ticket_id: 'T1', price_cents: 4000, status: 'open' });
  rememberListing(s, { id: 'L2', ticket_id: 'T2', price_cents: 3000, status: 'open' });
  rememberListing(s, { id: 'L3', ticket_id: 'T1', price_cents: 3500, status: 'open' });
  assert.deepEqual(rememberedListings(s), { T1: { id: 'L3', price_cents: 3500 }, T2: { id: 'L2', price_cents: 3000 } });
  forgetListings(s, ['T2', 'T9']);
  assert.deepEqual(rememberedListings(s), { T2: { id: 'L2', price_cents: 3000 } });
  forgetListings(s, []);
  assert.equal(s.size(), 0, 'the key goes when nothing is left');
  s.setItem('stampede.listings', 'not json');
  assert.deepEqual(rememberedListings(s), {});
  s.setItem('stampede.listings', '[1,2]');
  assert.deepEqual(rememberedListings(s), {});
});

test('a refused listing tells the seller why, with the problem\'s detail', () => {
  const over = problem(400, { code: 'over_face_value', detail: 'the price is above the face value', face_value_cents: 4500 });
  assert.equal(listingErrorText(over), 'Resale is at face value or less: at most $45.00. (the price is above the face value)');
  assert.equal(listingErrorText(problem(400, { code: 'over_face_value', detail: 'too much' })), 'Resale is at face value or less. (too much)');
  assert.match(listingErrorText(problem(400, { code: 'invalid_price', detail: 'x' })), /^Enter a price above zero.*\(x\)$/);
  assert.match(listingErrorText(problem(403, { code: 'resale_closed', detail: 'x' })), /^Resale is closed/);
  assert.equal(listingErrorText(problem(409, { code: 'not_valid', detail: 'the ticket is used', status: 'used' })),
    'This ticket cannot be listed now (it is used). (the ticket is used)');
  assert.match(listingErrorText(problem(404, { code: 'not_found', detail: 'no such ticket' })), /not yours to sell/);
  assert.equal(listingErrorText(problem(503, { code: 'service_unavailable', detail: 'retry' })), 'retry');
  assert.equal(listingErrorText(null), 'the ticket could not be listed');
});

test('a refused withdrawal and a refused purchase say why', () => {
  assert.match(withdrawErrorText(problem(409, { code: 'sold', detail: 'x' })), /^This ticket has been sold\./);
  assert.match(withdrawErrorText(problem(409, { code: 'held', detail: 'x' })), /^A buyer is paying/);
  assert.match(withdrawErrorText(problem(404, { code: 'not_found', detail: 'x' })), /withdrawn already/);
  assert.equal(withdrawErrorText(problem(500, { code: 'internal', detail: 'oops' })), 'oops');
  assert.match(buyErrorText(problem(409, { code: 'unavailable', detail: 'x' })), /^Someone else is buying this ticket.*refreshed/);
  assert.match(buyErrorText(problem(403, { code: 'own_listing', detail: 'x' })), /your own listing/);
  assert.match(buyErrorText(problem(403, { code: 'resale_closed', detail: 'x' })), /^Resale is closed/);
  assert.match(buyErrorText(problem(404, { code: 'not_found', detail: 'x' })), /gone/);
  assert.equal(buyErrorText(undefined), 'the ticket could not be held');
});
