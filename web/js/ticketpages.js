// The pages after the sale: "My tickets" (#/tickets: each ticket with its
// status; a valid one with its QR code, its code as text, a transfer form and
// a form to sell it at face value or less; a listed one with its price and a
// Withdraw button), the "Resale tickets" list of the event page (each with a
// Buy button that holds it and goes on to the hold page, as seat holds do),
// and the gate (#/gate: pick an event, scan with the camera where the browser
// has BarcodeDetector or paste a code, and see Admitted / Already used /
// Superseded / Invalid code). A Buy on an event that requires a verified
// e-mail address, from an account without one, gets accountpages.js's
// notice with the way to verify. The app shell (page, api, busy, …) is passed in
// by app.js; the decisions live in tickets.js and resale.js, which are
// unit-tested.

import { ApiError } from './api.js';
import { h, fill, field } from './dom.js';
import { seatLabel, parseSeatId, formatCents } from './format.js';
import {
  ticketStatusText, hasCode, parseCode, checkInOutcome, transferErrorText, looksLikeEmail, sanitizeSvg,
} from './tickets.js';
import {
  faceValueCents, centsToInput, checkListingPrice, listingView, listingsKey, findListing,
  rememberedListings, rememberListing, forgetListings, listingErrorText, withdrawErrorText, buyErrorText,
} from './resale.js';

const SCAN_EVERY_MS = 250;
const SAME_CODE_QUIET_MS = 4000; // a code held in front of the camera is checked in once
const GATE_EVENT_KEY = 'stampede.gateEvent';

/** "Sat 6 Dec 2026, 19:31:05": the gate wants the second a ticket was used. */
function gateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/**
 * The server's QR code SVG as a DOM node: parsed as XML (never HTML, so
 * nothing in it runs), stripped to drawing by sanitizeSvg, then imported.
 * Null when it does not parse as an <svg>.
 */
export function svgNode(text) {
  const doc = new DOMParser().parseFromString(String(text), 'image/svg+xml');
  if (doc.getElementsByTagName('parsererror').length) return null;
  const root = sanitizeSvg(doc.documentElement);
  return root ? document.importNode(root, true) : null;
}

export function ticketPages(shell) {
  const {
    api, page, loading, busy, showError, clearError, user, needSignIn, eventInfo, sectionName, announce, holdStarted,
    unverifiedNotice, reverified,
  } = shell;

  function placeOf(t, ev) {
    if (t.seat) {
      const s = parseSeatId(t.seat);
      return s ? `${sectionName(ev, s.section)} · ${seatLabel(t.seat)}` : t.seat;
    }
    return `${t.section_id ? sectionName(ev, t.section_id) : 'General admission'} · general admission`;
  }

  async function myTicketsPage(ctx) {
    if (!user()) {
      needSignIn('#/tickets');
      return;
    }
    page('My tickets', loading());
    const data = await api.get('/api/tickets');
    if (!ctx.live()) return;
    if (!data.tickets.length) {
      page('My tickets', h('p', { 'data-testid': 'tickets-empty' }, 'No tickets yet. ', h('a', { href: '#/' }, 'Find an event'), '.'));
      return;
    }
    const events = new Map();
    await Promise.all([...new Set(data.tickets.map((t) => t.event_id))].map(async (id) => {
      events.set(id, await eventInfo(id).catch(() => null));
    }));
    // A listed ticket's price and listing id: GET /api/tickets does not carry
    // them, so the event's open listings are asked, then this browser's memory.
    const listed = data.tickets.filter((t) => t.status === 'listed');
    const open = new Map();
    await Promise.all([...new Set(listed.map((t) => t.event_id))].map(async (id) => {
      const answer = await api.get(`/api/events/${encodeURIComponent(id)}/listings`).catch(() => null);
      open.set(id, answer && Array.isArray(answer.listings) ? answer.listings : []);
    }));
    if (!ctx.live()) return;
    forgetListings(window.localStorage, listed.map((t) => t.id));
    const remembered = rememberedListings(window.localStorage);
    const listingOf = (t) => findListing(t, { listings: open.get(t.event_id) || [], remembered });
    page('My tickets',
      h('p', { class: 'lead' }, 'Show the QR code at the door. A ticket you send to someone else gets a new code: the old one stops working. ',
        'You can sell a ticket you cannot use to another fan, at face value or less; once it is sold, its old code stops working too.'),
      h('ul', { class: 'tickets', 'data-testid': 'tickets-list' }, data.tickets.map((t) => ticketCard(ctx, t, events.get(t.event_id), listingOf))));
  }

  function ticketCard(ctx, t, ev, listingOf) {
    const card = h('li', { class: 'ticket card', 'data-testid': 'ticket', 'data-ticket-id': t.id, 'data-status': t.status },
      h('div', { class: 'ticket-facts' },
        h('h2', {}, ev ? h('a', { href: `#/events/${t.event_id}` }, ev.name) : `Event ${t.event_id}`),
        ev ? h('p', { class: 'muted' }, ev.venue) : null,
        h('p', { 'data-testid': 'ticket-place' }, placeOf(t, ev)),
        h('p', {}, h('span', { class: `badge ${t.status}`, 'data-testid': 'ticket-status' }, ticketStatusText(t.status)))));
    if (hasCode(t)) {
      const codeBox = h('div', { class: 'ticket-code', 'data-testid': 'ticket-code-box' }, loading());
      card.append(codeBox, transferForm(t), sellForm(t, faceValueCents(t, ev)));
      showCode(ctx, t, codeBox).catch((e) => {
        if (ctx.live()) fill(codeBox, h('p', { class: 'error', role: 'alert' }, 'Could not load the code: ', e.detail || e.message));
      });
    } else if (t.status === 'listed') {
      card.append(listedBox(t, listingOf(t)));
    } else if (t.status === 'resold') {
      card.append(h('p', { class: 'ticket-note muted', 'data-testid': 'resold-note' },
        'Sold on resale: the ticket is the buyer\'s now, and its old code no longer works.'));
    }
    return card;
  }

  /** Sell at face value or less: the price starts at the face value when the page knows it. */
  function sellForm(t, face) {
    const price = h('input', {
      inputmode: 'decimal', autocomplete: 'off', 'data-testid': 'sell-price',
      value: face !== null ? centsToInput(face) : '',
    });
    const sell = h('button', { type: 'submit', class: 'secondary', 'data-testid': 'sell-submit' }, 'Sell');
    const err = h('div', { class: 'error', role: 'alert', 'aria-live': 'assertive', 'data-testid': 'sell-error' });
    const hint = face !== null
      ? `At most ${formatCents(face)}, the face value. The buyer pays this price.`
      : 'At most the face value of the ticket. The buyer pays this price.';
    const form = h('form', { class: 'sell inline', 'data-testid': 'sell-form', 'aria-label': 'Sell this ticket on resale' },
      field('Resale price (USD)', price, hint), sell, err);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError();
      fill(err);
      const checked = checkListingPrice(price.value, face);
      if (checked.error) {
        fill(err, checked.error);
        price.focus();
        return;
      }
      try {
        const listing = await busy(sell, 'Listing…', () =>
          api.post(`/api/tickets/${encodeURIComponent(t.id)}/listing`, { price_cents: checked.cents }));
        rememberListing(window.localStorage, listing);
        announce(`Listed for resale at ${formatCents(listing.price_cents)}.`);
        shell.rerender();
      } catch (e2) {
        if (!(e2 instanceof ApiError)) throw e2;
        if (e2.status === 401) {
          needSignIn('#/tickets');
          return;
        }
        fill(err, listingErrorText(e2));
        price.focus();
      }
    });
    return form;
  }

  /** A listed ticket: its price and a Withdraw button (when its listing is known). */
  function listedBox(t, listing) {
    const text = listing && Number.isInteger(listing.price_cents)
      ? `Listed for resale at ${formatCents(listing.price_cents)}`
      : 'Listed for resale';
    const err = h('div', { class: 'error', role: 'alert', 'aria-live': 'assertive', 'data-testid': 'withdraw-error' });
    const box = h('div', { class: 'resale-listed', 'data-testid': 'listing-box' },
      h('p', {}, h('strong', { 'data-testid': 'listed-text' }, text), '. It has no code while it is listed: withdraw it to use it yourself.'));
    if (!listing) {
      box.append(h('p', { class: 'muted' }, 'A buyer may be paying for it right now; look again in a few minutes.'));
      return box;
    }
    const withdraw = h('button', { type: 'button', class: 'secondary', 'data-testid': 'withdraw-button' }, 'Withdraw');
    withdraw.addEventListener('click', async () => {
      clearError();
      fill(err);
      try {
        await busy(withdraw, 'Withdrawing…', () => api.del(`/api/listings/${encodeURIComponent(listing.id)}`));
        forgetListings(window.localStorage, Object.keys(rememberedListings(window.localStorage)).filter((id) => id !== t.id));
        announce('Listing withdrawn: the ticket is yours to use again.');
        shell.rerender();
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (e.status === 401) {
          needSignIn('#/tickets');
          return;
        }
        fill(err, withdrawErrorText(e));
      }
    });
    box.append(h('div', { class: 'actions' }, withdraw), err);
    return box;
  }

  // -------------------------------------------------------------------------
  // the event page's resale tickets
  // -------------------------------------------------------------------------

  /**
   * The "Resale tickets" section of an event page: `{el, load}`. `load`
   * (re)reads GET /api/events/{id}/listings and redraws only when the list
   * changed; the section hides when the event has no resale (404: not on sale).
   */
  function resaleSection(ctx, ev) {
    const list = h('ul', { class: 'listings', 'data-testid': 'listings' });
    const empty = h('p', { class: 'muted', 'data-testid': 'listings-empty', hidden: true }, 'No resale tickets right now.');
    const err = h('div', { class: 'error', role: 'alert', 'aria-live': 'assertive', 'data-testid': 'listing-error' });
    const el = h('section', { class: 'section resale', 'data-testid': 'resale', 'aria-labelledby': 'resale-title', hidden: true },
      h('header', { class: 'section-head' },
        h('h2', { id: 'resale-title' }, 'Resale tickets'),
        h('p', { class: 'muted' }, 'Tickets other fans sell back, at face value or less.')),
      err, list, empty);
    let shown = null;

    async function load() {
      let data;
      try {
        data = await api.get(`/api/events/${encodeURIComponent(ev.id)}/listings`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          if (ctx.live()) el.hidden = true;
          return;
        }
        throw e;
      }
      if (!ctx.live()) return;
      el.hidden = false;
      const listings = Array.isArray(data.listings) ? data.listings : [];
      const key = listingsKey(listings);
      if (key === shown) return;
      shown = key;
      fill(list, listings.map((l) => listingRow(listingView(l, ev))));
      empty.hidden = listings.length > 0;
    }

    function listingRow(v) {
      const buy = h('button', {
        type: 'button', class: 'primary', 'data-testid': 'listing-buy', 'aria-label': `Buy ${v.place} for ${v.priceText}`,
      }, 'Buy');
      buy.addEventListener('click', () => purchase(v, buy));
      return h('li', { class: 'listing', 'data-testid': 'listing', 'data-listing-id': v.id, 'data-ticket-id': v.ticketId },
        h('span', { class: 'listing-place', 'data-testid': 'listing-place' }, v.place),
        h('span', { class: 'listing-price num', 'data-testid': 'listing-price' }, v.priceText),
        buy);
    }

    async function purchase(v, button, retried = false) {
      if (!user()) {
        needSignIn(`#/events/${ev.id}`);
        return;
      }
      clearError();
      fill(err);
      try {
        const held = await busy(button, 'Holding…', () =>
          api.idempotent('POST', `/api/listings/${encodeURIComponent(v.id)}/holds`, { body: {} }));
        announce('Ticket held. Continue to payment.');
        holdStarted(held);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (e.status === 401) {
          needSignIn(`#/events/${ev.id}`);
          return;
        }
        if (e.code === 'email_unverified') {
          // Verified since this token was issued: once more with a fresh one.
          if (!retried && await reverified().catch(() => false)) {
            await purchase(v, button, true);
            return;
          }
          fill(err, unverifiedNotice());
          return;
        }
        fill(err, buyErrorText(e));
        if (e.code === 'unavailable' || e.status === 404) {
          shown = null;
          await load().catch(showError);
        }
      }
    }

    return { el, load };
  }

  async function showCode(ctx, t, box) {
    const { code, svg } = await api.get(`/api/tickets/${encodeURIComponent(t.id)}/code`);
    if (!ctx.live()) return;
    const node = svgNode(svg);
    fill(box,
      node
        ? h('div', { class: 'qr', role: 'img', 'aria-label': 'QR code of this ticket', 'data-testid': 'ticket-qr' }, node)
        : h('p', { class: 'error' }, 'The QR code could not be drawn; the code below works as well.'),
      h('details', { class: 'code-text' },
        h('summary', {}, 'Code as text'),
        h('code', { 'data-testid': 'ticket-code' }, code)));
  }

  function transferForm(t) {
    const email = h('input', { type: 'email', required: true, autocomplete: 'off', 'data-testid': 'transfer-email' });
    const send = h('button', { type: 'submit', class: 'secondary', 'data-testid': 'transfer-submit' }, 'Transfer');
    const err = h('div', { class: 'error', role: 'alert', 'aria-live': 'assertive', 'data-testid': 'transfer-error' });
    const form = h('form', { class: 'transfer inline', 'data-testid': 'transfer-form', 'aria-label': 'Transfer this ticket' },
      field('Send to (e-mail)', email, 'The recipient needs a Stampede account.'), send, err);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError();
      fill(err);
      const to = email.value.trim();
      if (!looksLikeEmail(to)) {
        fill(err, 'Enter the e-mail address of the recipient\'s account.');
        email.focus();
        return;
      }
      try {
        await busy(send, 'Transferring…', () => api.post(`/api/tickets/${encodeURIComponent(t.id)}/transfer`, { to_email: to }));
        announce(`Ticket sent to ${to}.`);
        shell.rerender();
      } catch (e2) {
        if (!(e2 instanceof ApiError)) throw e2;
        if (e2.status === 401) {
          needSignIn('#/tickets');
          return;
        }
        fill(err, transferErrorText(e2));
      }
    });
    return form;
  }

  // -------------------------------------------------------------------------
  // the gate
  // -------------------------------------------------------------------------

  async function gatePage(ctx) {
    const u = user();
    if (!u) {
      needSignIn('#/gate');
      return;
    }
    if (u.role !== 'gate' && u.role !== 'admin') {
      page('Gate', h('p', { 'data-testid': 'gate-forbidden' }, 'The gate is for door staff. You are signed in as ', u.email, '.'));
      return;
    }
    page('Gate', loading());
    const events = [];
    let cursor = null;
    for (let i = 0; i < 10; i++) {
      const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const data = await api.get(`/api/events${q}`);
      events.push(...data.events);
      cursor = data.next_cursor;
      if (!cursor) break;
    }
    if (!ctx.live()) return;

    const eventSelect = h('select', { required: true, 'data-testid': 'gate-event' },
      h('option', { value: '' }, 'Choose the event at this door'),
      events.map((ev) => h('option', { value: ev.id }, `${ev.name} · ${ev.venue}`)));
    const remembered = window.sessionStorage.getItem(GATE_EVENT_KEY);
    if (remembered && events.some((ev) => String(ev.id) === remembered)) eventSelect.value = remembered;
    eventSelect.addEventListener('change', () => window.sessionStorage.setItem(GATE_EVENT_KEY, eventSelect.value));

    const codeInput = h('textarea', { rows: 3, spellcheck: false, autocomplete: 'off', 'data-testid': 'gate-code' });
    const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'gate-submit' }, 'Check in');
    const result = h('div', { class: 'gate-result', role: 'status', 'aria-live': 'assertive', 'data-testid': 'gate-result' });
    const form = h('form', { class: 'gate', 'data-testid': 'gate-form' },
      field('Event', eventSelect),
      field('Ticket code', codeInput, 'Paste the code, or scan it with the camera.'),
      h('div', { class: 'actions' }, submit));

    let checking = false;
    async function checkIn(text) {
      clearError();
      const eventId = eventSelect.value;
      if (!eventId) {
        showResult({ kind: 'error', title: 'Choose an event', detail: 'pick the event this door admits to first' });
        eventSelect.focus();
        return;
      }
      const code = parseCode(text);
      if (!code) {
        showResult({ kind: 'invalid', title: 'Invalid code', detail: 'that is not a ticket code' });
        return;
      }
      if (checking) return;
      checking = true;
      try {
        const answer = await busy(submit, 'Checking…', () =>
          api.post(`/api/events/${encodeURIComponent(eventId)}/check-in`, { code }).catch((e) => {
            if (e instanceof ApiError && e.status !== 401 && e.status !== 403 && e.status !== 404) return e;
            throw e;
          }));
        if (!ctx.live()) return;
        const outcome = checkInOutcome(answer, { formatTime: gateTime });
        if (outcome.kind === 'admitted') {
          const s = parseSeatId(answer.seat);
          const ev = events.find((x) => String(x.id) === String(eventId));
          if (s) outcome.detail = `${sectionName(ev, s.section)} · ${seatLabel(answer.seat)}`;
        }
        showResult(outcome);
        codeInput.value = '';
        codeInput.focus();
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) {
          needSignIn('#/gate');
          return;
        }
        showResult(checkInOutcome(e));
      } finally {
        checking = false;
      }
    }
    function showResult({ kind, title, detail }) {
      result.dataset.kind = kind;
      fill(result,
        h('strong', { class: 'gate-verdict', 'data-testid': 'gate-verdict' }, title),
        h('span', { 'data-testid': 'gate-detail' }, detail));
      announce(title);
    }
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      checkIn(codeInput.value);
    });

    page('Gate', form, result, camera(ctx, (code) => checkIn(code)));
    if (!eventSelect.value) eventSelect.focus();
    else codeInput.focus();
  }

  /** The camera scanner, where the browser has BarcodeDetector for QR codes; else a note. */
  function camera(ctx, onCode) {
    const box = h('section', { class: 'scanner', 'data-testid': 'gate-camera' });
    if (!('BarcodeDetector' in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      box.dataset.state = 'unsupported';
      fill(box, h('p', { class: 'muted' }, 'This browser cannot scan QR codes: paste the code instead.'));
      return box;
    }
    const video = h('video', { muted: true, playsinline: true, 'aria-label': 'Camera view' });
    video.hidden = true;
    const start = h('button', { type: 'button', class: 'secondary', 'data-testid': 'gate-scan' }, 'Scan with the camera');
    const stopBtn = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Stop the camera');
    fill(box, h('div', { class: 'actions' }, start, stopBtn), video);
    let stream = null;
    let last = { code: null, at: 0 };
    function stop() {
      if (stream) for (const track of stream.getTracks()) track.stop();
      stream = null;
      video.hidden = true;
      stopBtn.hidden = true;
      start.hidden = false;
    }
    window.addEventListener('hashchange', stop, { once: true });
    stopBtn.addEventListener('click', stop);
    start.addEventListener('click', async () => {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (!formats.includes('qr_code')) {
          fill(box, h('p', { class: 'muted' }, 'This browser cannot read QR codes: paste the code instead.'));
          return;
        }
        const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
        video.srcObject = stream;
        video.hidden = false;
        stopBtn.hidden = false;
        start.hidden = true;
        await video.play();
        ctx.every(SCAN_EVERY_MS, async () => {
          if (!stream) return;
          if (!ctx.live()) {
            stop();
            return;
          }
          const found = await detector.detect(video);
          const value = found.length ? found[0].rawValue : null;
          if (!value) return;
          const now = Date.now();
          if (value === last.code && now - last.at < SAME_CODE_QUIET_MS) return;
          last = { code: value, at: now };
          await onCode(value);
        });
      } catch (e) {
        stop();
        showError(new Error(`the camera could not be used (${e.message || e}): paste the code instead`));
      }
    });
    return box;
  }

  return { myTicketsPage, gatePage, resaleSection };
}
