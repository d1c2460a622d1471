// Resale at face value, the DOM-free part: a ticket's face value as far as
// the page knows it, the price a seller types, how a listing reads on the
// event page, which listing a `listed` ticket belongs to, and what each
// resale problem+json tells the seller or the buyer.
//
// No browser globals here (storage is passed in), so node's test runner
// covers all of it (web/tests/resale.test.mjs).

import { formatCents, parseMoneyToCents } from './format.js';

const LISTINGS_KEY = 'stampede.listings';

function sectionOf(event, sectionId) {
  const sections = event && Array.isArray(event.sections) ? event.sections : [];
  return sections.find((s) => String(s.id) === String(sectionId)) || null;
}

function sectionIdOf(item) {
  if (item.section_id !== undefined && item.section_id !== null && item.section_id !== '') return String(item.section_id);
  const m = /^(\d+):\d+:\d+$/.exec(String(item.seat || ''));
  return m ? m[1] : null;
}

/**
 * A ticket's face value in cents: the price of its section on the event
 * (GET /api/events/{id}). Null when the page does not know it (no event, an
 * unknown section); the server decides then, and says so with
 * `over_face_value` and `face_value_cents`.
 */
export function faceValueCents(ticket, event) {
  if (!ticket) return null;
  const sec = sectionOf(event, sectionIdOf(ticket));
  return sec && Number.isSafeInteger(sec.price_cents) && sec.price_cents >= 0 ? sec.price_cents : null;
}

/** 4500 → "45.00", what the price field starts with (integer arithmetic: no float rounding). */
export function centsToInput(cents) {
  const c = Math.max(0, Math.trunc(Number(cents) || 0));
  return `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
}

/**
 * The asking price a seller typed ("40", "$40.00", "39.5"), checked against
 * the face value when it is known: `{cents}` or `{error}` (a sentence).
 */
export function checkListingPrice(text, faceValue = null) {
  const cents = parseMoneyToCents(text);
  if (!Number.isSafeInteger(cents) || cents <= 0) {
    return { error: 'Enter a price above zero in dollars and cents, e.g. 40.00.' };
  }
  if (faceValue === 0) return { error: 'This ticket was free: it cannot be sold on resale.' };
  if (faceValue !== null && faceValue !== undefined && cents > faceValue) {
    return { error: `Resale is at face value or less: at most ${formatCents(faceValue)}.` };
  }
  return { cents };
}

/** "Stalls · Row 3, seat 6", or "Standing · general admission" for a place without a seat. */
export function listingPlace(item, event) {
  const sid = sectionIdOf(item);
  const sec = sectionOf(event, sid);
  const name = sec ? sec.name : sid ? `Section ${sid}` : 'General admission';
  const m = /^\d+:(\d+):(\d+)$/.exec(String(item.seat || ''));
  return m ? `${name} · Row ${m[1]}, seat ${m[2]}` : `${name} · general admission`;
}

/**
 * A listing of GET /api/events/{id}/listings as the event page shows it:
 * `{id, ticketId, place, priceCents, priceText}`.
 */
export function listingView(listing, event) {
  return {
    id: String(listing.id),
    ticketId: String(listing.ticket_id),
    place: listingPlace(listing, event),
    priceCents: listing.price_cents,
    priceText: formatCents(listing.price_cents),
  };
}

/** A short fingerprint of a list of listings, so a refresh that changed nothing redraws nothing. */
export function listingsKey(listings) {
  return (listings || []).map((l) => `${l.id}@${l.price_cents}`).join(',');
}

// ---------------------------------------------------------------------------
// which listing a `listed` ticket belongs to
// ---------------------------------------------------------------------------

/**
 * The listing (`{id, price_cents}`) of a ticket the caller listed, for its
 * price and the Withdraw button. GET /api/tickets says only `listed`, so it
 * is looked for: on the ticket itself (should the API add it), among the
 * event's open listings, then among the listings this browser made. Null when
 * none says (a buyer may be holding it: held listings are not public).
 */
export function findListing(ticket, { listings = [], remembered = {} } = {}) {
  if (!ticket) return null;
  if (ticket.listing && ticket.listing.id !== undefined) {
    return { id: String(ticket.listing.id), price_cents: ticket.listing.price_cents ?? null };
  }
  if (ticket.listing_id !== undefined && ticket.listing_id !== null) {
    return { id: String(ticket.listing_id), price_cents: ticket.price_cents ?? null };
  }
  const open = listings.find((l) => String(l.ticket_id) === String(ticket.id));
  if (open) return { id: String(open.id), price_cents: open.price_cents };
  const mine = remembered[ticket.id];
  return mine && mine.id !== undefined ? { id: String(mine.id), price_cents: mine.price_cents ?? null } : null;
}

/** The listings this browser made: `{ticket id: {id, price_cents}}` (storage is localStorage or a fake). */
export function rememberedListings(storage) {
  try {
    const v = JSON.parse(storage.getItem(LISTINGS_KEY));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

/** Remembers a listing just made (the 201 body of POST /api/tickets/{id}/listing). */
export function rememberListing(storage, listing) {
  const all = rememberedListings(storage);
  all[listing.ticket_id] = { id: String(listing.id), price_cents: listing.price_cents };
  storage.setItem(LISTINGS_KEY, JSON.stringify(all));
}

/** Forgets the listings of tickets that are not listed any more (withdrawn, sold, …). */
export function forgetListings(storage, keepTicketIds) {
  const keep = new Set([...keepTicketIds].map(String));
  const all = rememberedListings(storage);
  const left = Object.fromEntries(Object.entries(all).filter(([tid]) => keep.has(tid)));
  if (Object.keys(left).length === Object.keys(all).length) return;
  if (Object.keys(left).length) storage.setItem(LISTINGS_KEY, JSON.stringify(left));
  else storage.removeItem(LISTINGS_KEY);
}

// ---------------------------------------------------------------------------
// what the problems say
// ---------------------------------------------------------------------------

function detailOf(err, fallback) {
  return err && (err.detail || err.message) ? err.detail || err.message : fallback;
}

function withLead(lead, detail) {
  return lead ? `${lead} (${detail})` : detail;
}

/** The seller's message when POST /api/tickets/{id}/listing fails. */
export function listingErrorText(err) {
  const detail = detailOf(err, 'the ticket could not be listed');
  const body = (err && err.body) || {};
  switch (err && err.code) {
    case 'over_face_value':
      return withLead(Number.isSafeInteger(body.face_value_cents)
        ? `Resale is at face value or less: at most ${formatCents(body.face_value_cents)}.`
        : 'Resale is at face value or less.', detail);
    case 'invalid_price':
      return withLead('Enter a price above zero in dollars and cents.', detail);
    case 'resale_closed':
      return withLead('Resale is closed: the event has started.', detail);
    case 'not_valid':
      return withLead(`This ticket cannot be listed now${body.status ? ` (it is ${body.status})` : ''}.`, detail);
    default:
      if (err && err.status === 404) return withLead('This ticket is not yours to sell any more.', detail);
      return detail;
  }
}

/** The seller's message when DELETE /api/listings/{id} fails. */
export function withdrawErrorText(err) {
  const detail = detailOf(err, 'the listing could not be withdrawn');
  switch (err && err.code) {
    case 'sold':
      return withLead('This ticket has been sold.', detail);
    case 'held':
      return withLead('A buyer is paying for this ticket right now. If their hold lapses, you can withdraw it then.', detail);
    default:
      if (err && err.status === 404) return withLead('This listing is withdrawn already, or gone.', detail);
      return detail;
  }
}

/** The buyer's message when POST /api/listings/{id}/holds fails. */
export function buyErrorText(err) {
  const detail = detailOf(err, 'the ticket could not be held');
  switch (err && err.code) {
    case 'unavailable':
      return withLead('Someone else is buying this ticket, or it has just been sold or withdrawn. The list is refreshed.', detail);
    case 'own_listing':
      return withLead('This is your own listing: withdraw it in My tickets instead.', detail);
    case 'resale_closed':
      return withLead('Resale is closed: the event has started.', detail);
    case 'email_unverified':
      return withLead('This event requires a verified e-mail address: verify yours on your account page.', detail);
    default:
      if (err && err.status === 404) return withLead('This listing is gone. The list is refreshed.', detail);
      return detail;
  }
}
