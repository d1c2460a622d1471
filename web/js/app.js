// Stampede web client: hash routes, one page at a time.
//
//   #/                  events on sale
//   #/events/{id}       an event: seat maps, general-admission pickers, hold;
//                       resale tickets to buy (ticketpages.js)
//   #/hold              the current hold (its id is kept in localStorage), pay;
//                       a resale ticket's hold too (it carries listing_id)
//   #/holds/{id}        a given hold
//   #/orders            my orders
//   #/orders/{id}       one order (the confirmation page)
//   #/tickets           my tickets: QR codes, transfer, resale (ticketpages.js)
//   #/gate              check-in at the door, for gate staff and admins
//   #/signin #/signup   accounts (?next=<route> to come back)
//   #/account           my account: e-mail, role, verified or not (send the
//                       verification e-mail, enter its code), change password
//                       (accountpages.js)
//   #/verify-email?token=    an e-mail's verify link (the path /verify-email
//                       is turned into this route on load)
//   #/forgot            ask for a password-reset link
//   #/reset-password?token=  the reset link: choose a new password
//   #/admin             create and publish events
//   #/manage/new        the same, for organisers and admins (organiserpages.js)
//   #/manage            my events: the events I manage, drafts included
//   #/manage/{id}       an event's sales report (CSV download) and audit trail
//   #/admin/audit       the audit log of every admin and organiser action (admins)

import { createApi, ApiError, newIdempotencyKey } from './api.js';
import { h, fill, field } from './dom.js';
import {
  formatCents, formatTime, formatCountdown, spokenCountdown, seatLabel, parseSeatId,
  pruneSelection, seatsFromRows,
} from './format.js';
import { SeatMap, legend } from './seatmap.js';
import { ticketPages } from './ticketpages.js';
import { organiserPages, canManage } from './organiserpages.js';
import { accountPages } from './accountpages.js';
import { routeFromPath, isEmailUnverified } from './account.js';

const HOLD_KEY = 'stampede.currentHold';
const PASS_KEY = 'stampede.queuePass.'; // + event id
const SEAT_REFRESH_MS = 2000;
const LISTING_REFRESH_MS = 10_000; // resale listings change slowly; a failed Buy refreshes at once
const QUEUE_POLL_MS = 2000;

const app = document.getElementById('app');
const errorBox = document.getElementById('error');
const announcer = document.getElementById('announce');
const accountBox = document.getElementById('account');
const resumeBox = document.getElementById('resume');
const adminLink = document.querySelector('[data-testid="nav-admin"]');
const gateLink = document.querySelector('[data-testid="nav-gate"]');
const manageLink = document.querySelector('[data-testid="nav-manage"]');

const api = createApi({
  fetch: (...a) => window.fetch(...a),
  storage: window.localStorage,
  onSignedOut: () => renderAccount(),
});

// ---------------------------------------------------------------------------
// shared bits
// ---------------------------------------------------------------------------

/** Shows a problem's `detail` in the page's alert region. */
function showError(err) {
  const text = err instanceof ApiError ? err.detail : err && err.message ? err.message : String(err);
  fill(errorBox, h('strong', {}, 'Something went wrong: '), text);
  if (err instanceof ApiError && err.status === 401) {
    renderAccount();
  }
}
function clearError() {
  fill(errorBox);
}
function announce(text) {
  announcer.textContent = text;
}

const currentHold = {
  get: () => window.localStorage.getItem(HOLD_KEY),
  set: (id) => window.localStorage.setItem(HOLD_KEY, id),
  clear: () => window.localStorage.removeItem(HOLD_KEY),
};

// A waiting room's pass, per event and per signed-in user, for this tab's
// session (a pass lasts minutes; a refresh mid-purchase keeps it).
const queuePass = {
  get(eventId) {
    try {
      const v = JSON.parse(window.sessionStorage.getItem(PASS_KEY + eventId));
      const u = user();
      return v && u && v.user === u.id ? v.pass : null;
    } catch {
      return null;
    }
  },
  set(eventId, pass) {
    const u = user();
    if (u) window.sessionStorage.setItem(PASS_KEY + eventId, JSON.stringify({ user: u.id, pass }));
  },
  clear: (eventId) => window.sessionStorage.removeItem(PASS_KEY + eventId),
};

function user() {
  const s = api.session.get();
  return s && s.user ? s.user : null;
}

function go(route) {
  if (window.location.hash === route) render();
  else window.location.hash = route;
}

function needSignIn(route) {
  go(`#/signin?next=${encodeURIComponent(route)}`);
}

function renderAccount() {
  const u = user();
  if (u) {
    fill(accountBox,
      h('a', { href: '#/account', 'data-testid': 'nav-account' }, 'Account'),
      h('span', { class: 'whoami', 'data-testid': 'whoami' }, u.email, u.role !== 'customer' ? ` (${u.role})` : ''),
      h('button', {
        type: 'button', class: 'link', 'data-testid': 'nav-signout',
        onclick: async () => {
          await api.signOut();
          currentHold.clear();
          renderAccount();
          go('#/');
        },
      }, 'Sign out'));
  } else {
    fill(accountBox,
      h('a', { href: '#/signin', 'data-testid': 'nav-signin' }, 'Sign in'),
      h('a', { href: '#/signup', 'data-testid': 'nav-signup', class: 'button-link' }, 'Sign up'));
  }
  adminLink.hidden = !(u && u.role === 'admin');
  gateLink.hidden = !(u && (u.role === 'admin' || u.role === 'gate'));
  manageLink.hidden = !canManage(u);
}

function renderResume(route) {
  const id = currentHold.get();
  if (!id || route.startsWith('#/hold')) {
    fill(resumeBox);
    resumeBox.hidden = true;
    return;
  }
  resumeBox.hidden = false;
  fill(resumeBox, 'You have seats on hold. ',
    h('a', { href: '#/hold', 'data-testid': 'resume-hold' }, 'Continue to payment'));
}

function page(title, ...children) {
  document.title = `${title} · Stampede`;
  return fill(app, h('h1', { 'data-testid': 'page-title' }, title), ...children);
}

function loading() {
  return h('p', { class: 'muted', 'aria-busy': 'true' }, 'Loading…');
}

/** Runs fn with the button disabled and labelled busyText meanwhile. */
async function busy(button, busyText, fn) {
  const text = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = busyText;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = text;
  }
}

// Event names for pages that show only ids (holds, orders); fetched once each.
const eventCache = new Map();
function eventInfo(id) {
  if (!eventCache.has(id)) {
    eventCache.set(id, api.get(`/api/events/${encodeURIComponent(id)}`).catch((e) => {
      eventCache.delete(id);
      throw e;
    }));
  }
  return eventCache.get(id);
}

function sectionName(event, sectionId) {
  const s = event && event.sections ? event.sections.find((x) => String(x.id) === String(sectionId)) : null;
  return s ? s.name : `Section ${sectionId}`;
}

/** "VIP · Row 2, seat 5", or the plain list for general admission. */
function placesList(item, event, testid) {
  if (item.seats && item.seats.length) {
    return h('ul', { class: 'places', 'data-testid': testid },
      item.seats.map((id) => {
        const s = parseSeatId(id);
        return h('li', { 'data-seat-id': id }, s ? `${sectionName(event, s.section)} · ${seatLabel(id)}` : id);
      }));
  }
  const where = item.section_id ? sectionName(event, item.section_id) : 'General admission';
  return h('ul', { class: 'places', 'data-testid': testid },
    h('li', {}, `${where} · ${item.quantity} general-admission place${item.quantity === 1 ? '' : 's'}`));
}

// ---------------------------------------------------------------------------
// pages
// ---------------------------------------------------------------------------

async function eventsPage(ctx) {
  const list = h('ul', { class: 'cards', 'data-testid': 'event-list' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Show more events');
  page('Events on sale', list, more);
  list.append(loading());
  let cursor = null;
  async function load() {
    const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
    const data = await api.get(`/api/events${q}`);
    if (!ctx.live()) return;
    list.querySelector('[aria-busy]')?.remove();
    if (!data.events.length && !list.children.length) {
      list.append(h('li', { class: 'muted' }, 'No events are on sale right now.'));
    }
    for (const ev of data.events) list.append(eventCard(ev));
    cursor = data.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => busy(more, 'Loading…', load).catch(showError));
  await load();
}

function eventCard(ev) {
  const prices = ev.sections.map((s) => s.price_cents);
  const left = ev.sections.reduce((n, s) => n + s.available, 0);
  const from = prices.length ? `from ${formatCents(Math.min(...prices))}` : '';
  return h('li', { class: 'card', 'data-testid': 'event-card', 'data-event-id': ev.id },
    h('h2', {}, h('a', { href: `#/events/${ev.id}`, 'data-testid': 'event-link' }, ev.name)),
    h('p', {}, ev.venue, ' · ', h('time', { datetime: ev.starts_at }, formatTime(ev.starts_at))),
    h('p', { class: 'muted' }, `${from} · ${left} place${left === 1 ? '' : 's'} left`));
}

async function eventPage(ctx, id) {
  page('Event', loading());
  let ev = await api.get(`/api/events/${encodeURIComponent(id)}`);
  if (!ctx.live()) return;
  const selected = new Set();
  const maps = new Map(); // section id → SeatMap
  const availability = new Map(); // section id → element
  const summary = h('p', { 'data-testid': 'selection-summary', 'aria-live': 'polite' });
  const holdButton = h('button', { type: 'button', class: 'primary', 'data-testid': 'hold-button', disabled: true }, 'Hold selected seats');
  const gaButtons = [];
  const onSale = () => Date.parse(ev.sale_starts_at) <= Date.now();
  // The waiting room: holding needs a pass, which comes with our turn.
  const queueBox = h('p', { class: 'notice', 'data-testid': 'waiting-room', 'aria-live': 'polite', hidden: true });
  let ticket = null;
  const waiting = () => Boolean(ev.waiting_room) && !queuePass.get(id);
  function gate() {
    for (const b of gaButtons) b.disabled = waiting();
  }
  async function queueStep() {
    if (!ev.waiting_room || !onSale()) return;
    queueBox.hidden = false;
    if (!user()) {
      queueBox.dataset.state = 'signed-out';
      fill(queueBox, 'This sale has a waiting room. ',
        h('a', { href: `#/signin?next=${encodeURIComponent(`#/events/${id}`)}` }, 'Sign in'), ' to take your place in line.');
      return;
    }
    if (!queuePass.get(id)) {
      if (!ticket) ticket = (await api.post(`/api/events/${encodeURIComponent(id)}/queue`)).ticket;
      let st;
      try {
        st = await api.get(`/api/events/${encodeURIComponent(id)}/queue/${encodeURIComponent(ticket)}`);
      } catch (e) {
        // The ticket is gone (the line was reset): join again next time.
        if (e instanceof ApiError && e.status === 404) ticket = null;
        throw e;
      }
      if (!ctx.live()) return;
      if (st.sold_out) {
        queueBox.dataset.state = 'sold-out';
        fill(queueBox, h('strong', { 'data-testid': 'queue-sold-out' }, 'Sold out.'),
          ' Every seat of this event is sold: there is nothing left to wait for.');
        return;
      }
      if (!st.admitted || !st.pass) {
        queueBox.dataset.state = 'waiting';
        fill(queueBox, h('strong', { 'data-testid': 'queue-position' }, `You are number ${st.position} in line.`),
          ' Keep this page open: you can hold seats as soon as it is your turn.');
        return;
      }
      queuePass.set(id, st.pass);
      announce('It is your turn: pick your seats.');
    }
    queueBox.dataset.state = 'admitted';
    fill(queueBox, h('strong', {}, 'It is your turn.'), ' Pick your seats and hold them.');
    updateSummary();
  }

  function priceOf(seatId) {
    const s = parseSeatId(seatId);
    const sec = s && ev.sections.find((x) => String(x.id) === s.section);
    return sec ? sec.price_cents : 0;
  }
  function updateSummary() {
    const n = selected.size;
    const total = [...selected].reduce((t, sid) => t + priceOf(sid), 0);
    summary.textContent = n
      ? `${n} seat${n === 1 ? '' : 's'} selected · ${formatCents(total)}: ${[...selected].map(seatLabel).join('; ')}`
      : 'No seats selected. Pick seats on a map below.';
    holdButton.disabled = n === 0 || waiting();
    gate();
    holdButton.textContent = n ? `Hold ${n} seat${n === 1 ? '' : 's'}` : 'Hold selected seats';
  }

  async function hold(body, button, retried = false) {
    if (!user()) {
      needSignIn(`#/events/${id}`);
      return;
    }
    clearError();
    try {
      const pass = queuePass.get(id);
      const headers = pass ? { 'x-queue-pass': pass } : {};
      const held = await busy(button, 'Holding…', () => api.idempotent('POST', `/api/events/${encodeURIComponent(id)}/holds`, { body, headers }));
      currentHold.set(held.id);
      announce('Seats held. Continue to payment.');
      go('#/hold');
    } catch (e) {
      if (e instanceof ApiError && e.code === 'unavailable' && Array.isArray(e.body.seats)) {
        for (const m of maps.values()) m.markTaken(e.body.seats);
        updateSummary();
      }
      if (e instanceof ApiError && e.status === 401) {
        needSignIn(`#/events/${id}`);
        return;
      }
      if (isEmailUnverified(e)) {
        // Verified since this token was issued: once more with a fresh one.
        if (!retried && await reverified().catch(() => false)) {
          await hold(body, button, true);
          return;
        }
        fill(errorBox, unverifiedNotice());
        return;
      }
      if (e instanceof ApiError && e.code === 'queue_pass_required') {
        // No pass, or it lapsed: back to the line (the same place, if still held).
        queuePass.clear(id);
        updateSummary();
        queueStep().catch(showError);
      }
      showError(e);
    }
  }
  holdButton.addEventListener('click', () => hold({ seats: [...selected] }, holdButton));

  // Best available: the service picks the seats (the lowest row that has
  // them, nearest its centre), together unless the buyer says otherwise.
  function bestForm(sec) {
    const max = Math.max(1, Math.min(ev.per_user_limit || 1, 50));
    const qty = h('input', { type: 'number', min: 1, max, value: Math.min(2, max), required: true, inputmode: 'numeric', 'data-testid': `best-quantity-${sec.id}` });
    const together = h('input', { type: 'checkbox', checked: true, 'data-testid': `best-adjacent-${sec.id}` });
    const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': `best-hold-${sec.id}` }, 'Hold best available');
    gaButtons.push(btn);
    const form = h('form', { class: 'ga best', 'data-testid': 'best-form', 'data-section-id': sec.id },
      field('Best available seats', qty, `Up to ${max}: the best free seats, front rows and centre first`),
      h('label', { class: 'check' }, together, ' Seats together'),
      btn);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const quantity = Number(qty.value);
      if (!Number.isInteger(quantity) || quantity < 1 || quantity > max) {
        showError(new Error(`choose 1 to ${max} seats`));
        return;
      }
      hold({ section_id: String(sec.id), quantity, adjacent: together.checked }, btn);
    });
    return form;
  }

  const sections = ev.sections.map((sec) => {
    const avail = h('span', { 'data-testid': `available-${sec.id}` });
    availability.set(String(sec.id), avail);
    const head = h('header', { class: 'section-head' },
      h('h2', {}, sec.name),
      h('p', {}, formatCents(sec.price_cents), ' · ', avail));
    if (sec.general_admission) {
      const max = Math.max(1, Math.min(ev.per_user_limit || 1, 50));
      const qty = h('input', { type: 'number', min: 1, max, value: 1, required: true, inputmode: 'numeric', 'data-testid': `ga-quantity-${sec.id}` });
      const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': `ga-hold-${sec.id}` }, 'Hold places');
      gaButtons.push(btn);
      const form = h('form', { class: 'ga', 'data-testid': 'ga-form', 'data-section-id': sec.id },
        field('How many places', qty, `General admission, up to ${max} per customer`), btn);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const quantity = Number(qty.value);
        if (!Number.isInteger(quantity) || quantity < 1 || quantity > max) {
          showError(new Error(`choose 1 to ${max} places`));
          return;
        }
        hold({ section_id: String(sec.id), quantity }, btn);
      });
      return h('section', { class: 'section', 'data-testid': `section-${sec.id}` }, head, form);
    }
    const map = new SeatMap(sec, selected, () => updateSummary());
    maps.set(String(sec.id), map);
    return h('section', { class: 'section', 'data-testid': `section-${sec.id}` }, head, bestForm(sec), map.el);
  });

  function paintAvailability() {
    for (const sec of ev.sections) {
      const el = availability.get(String(sec.id));
      if (el) el.textContent = `${sec.available} of ${sec.capacity} left`;
    }
  }

  const saleNote = onSale()
    ? null
    : h('p', { class: 'notice', 'data-testid': 'not-on-sale' }, 'Sale starts ', h('time', { datetime: ev.sale_starts_at }, formatTime(ev.sale_starts_at)), '.');
  const resale = resaleSection(ctx, ev);
  page(ev.name,
    h('p', { class: 'lead', 'data-testid': 'event-meta' }, ev.venue, ' · ', h('time', { datetime: ev.starts_at }, formatTime(ev.starts_at)),
      ` · up to ${ev.per_user_limit} per customer · seats are held for ${Math.round(ev.hold_seconds / 60) || 1} min`),
    saleNote,
    ev.verified_email_required
      ? h('p', { class: 'muted', 'data-testid': 'verified-required' }, 'Only accounts with a verified e-mail address can buy tickets for this event.')
      : null,
    queueBox,
    maps.size ? legend() : null,
    ...sections,
    maps.size ? h('div', { class: 'checkout-bar' }, summary, holdButton) : null,
    resale.el);
  paintAvailability();
  updateSummary();
  if (onSale()) {
    resale.load().catch((e) => { if (ctx.live()) showError(e); }); // not awaited: the seat maps come first
    ctx.every(LISTING_REFRESH_MS, resale.load);
  }

  async function refresh() {
    const jobs = [...maps.entries()].map(async ([sid, map]) => {
      const data = await api.get(`/api/events/${encodeURIComponent(id)}/sections/${encodeURIComponent(sid)}/seats?format=rows`);
      if (!ctx.live()) return;
      const seats = seatsFromRows(data);
      const dropped = pruneSelection(selected, seats);
      map.update(seats);
      if (dropped.length) {
        showError(new Error(`${dropped.map(seatLabel).join(', ')} ${dropped.length === 1 ? 'was' : 'were'} just taken by someone else.`));
        updateSummary();
      }
    });
    jobs.push(api.get(`/api/events/${encodeURIComponent(id)}`).then((fresh) => {
      if (!ctx.live()) return;
      ev = fresh;
      paintAvailability();
    }));
    await Promise.all(jobs);
  }
  await refresh();
  ctx.every(SEAT_REFRESH_MS, refresh);
  if (ev.waiting_room) {
    await queueStep().catch(showError);
    ctx.every(QUEUE_POLL_MS, async () => {
      if (waiting()) await queueStep();
    });
  }
}

async function holdPage(ctx, explicitId) {
  const id = explicitId || currentHold.get();
  if (!user()) {
    needSignIn(explicitId ? `#/holds/${explicitId}` : '#/hold');
    return;
  }
  if (!id) {
    page('Your hold', h('p', { 'data-testid': 'no-hold' }, 'You have no seats on hold. ', h('a', { href: '#/' }, 'Find an event'), '.'));
    return;
  }
  page('Your hold', loading());
  let hold;
  try {
    hold = await api.get(`/api/holds/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      if (currentHold.get() === id) currentHold.clear();
      page('Your hold', h('p', { 'data-testid': 'no-hold' }, 'That hold no longer exists. ', h('a', { href: '#/' }, 'Find an event'), '.'));
      return;
    }
    throw e;
  }
  if (!ctx.live()) return;
  const ev = await eventInfo(hold.event_id).catch(() => null);
  if (!ctx.live()) return;
  // A hold on a resale listing is paid the same way; only the words differ.
  const resale = Boolean(hold.listing_id);
  const again = () => h('a', { href: `#/events/${hold.event_id}` }, resale ? 'See the resale tickets' : 'Pick seats again');

  const status = h('span', { 'data-testid': 'hold-status' }, hold.status);
  const timer = h('span', { class: 'countdown', role: 'timer', 'data-testid': 'hold-countdown', 'aria-describedby': 'countdown-label' });
  const payError = h('div', { class: 'error', role: 'alert', 'aria-live': 'assertive', 'data-testid': 'payment-error' });
  const card = h('select', { 'data-testid': 'card-select', name: 'payment_method' },
    h('option', { value: 'pm_card_visa' }, 'Visa ending 4242 (test card that succeeds)'),
    h('option', { value: 'pm_card_declined' }, 'Visa ending 0002 (test card that is declined)'));
  const pay = h('button', { type: 'submit', class: 'primary', 'data-testid': 'pay-button' }, `Pay ${formatCents(hold.amount_cents)}`);
  const release = h('button', { type: 'button', class: 'secondary', 'data-testid': 'release-button' }, resale ? 'Release this ticket' : 'Release these seats');
  const form = h('form', { class: 'pay', 'data-testid': 'pay-form', 'aria-label': 'Payment' },
    field('Card', card, 'Test mode: no real card is charged.'), h('div', { class: 'actions' }, pay, release), payError);

  const expires = Date.parse(hold.expires_at);
  let lastSpoken = null;
  function tick() {
    const left = expires - Date.now();
    timer.textContent = formatCountdown(left);
    timer.dataset.remainingMs = String(Math.max(0, left));
    const bucket = left <= 0 ? 0 : left <= 10_000 ? 10 : left <= 30_000 ? 30 : Math.ceil(left / 60_000) * 60;
    if (bucket !== lastSpoken) {
      if (lastSpoken !== null) announce(spokenCountdown(left));
      lastSpoken = bucket;
    }
    timer.classList.toggle('urgent', left < 60_000);
    if (left <= 0 && hold.status === 'held') {
      expired();
    }
  }
  function expired() {
    hold.status = 'expired';
    status.textContent = 'expired';
    pay.disabled = true;
    release.disabled = true;
    card.disabled = true;
    if (currentHold.get() === id) currentHold.clear();
    fill(payError, resale ? 'This hold has expired and the ticket went back on resale. ' : 'This hold has expired and the seats were released. ', again(), '.');
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError();
    fill(payError);
    // A fresh key per attempt; api.idempotent reuses it on a network retry.
    const key = newIdempotencyKey();
    try {
      const result = await busy(pay, 'Paying…', () =>
        api.idempotent('POST', `/api/holds/${encodeURIComponent(id)}/payment`, { body: { payment_method: card.value }, key }));
      if (currentHold.get() === id) currentHold.clear();
      announce('Payment accepted. Your order is confirmed.');
      go(`#/orders/${result.order.id}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      fill(payError, h('strong', {}, err.code === 'declined' ? 'Card declined. ' : 'Payment failed. '), err.detail);
      if (err.code === 'hold_expired') expired();
      if (err.code === 'already_paid') {
        if (currentHold.get() === id) currentHold.clear();
        fill(payError, err.detail, ' ', h('a', { href: '#/orders' }, 'See your orders'), '.');
      }
      if (err.status === 401) needSignIn('#/hold');
    }
  });
  release.addEventListener('click', async () => {
    clearError();
    try {
      await busy(release, 'Releasing…', () => api.del(`/api/holds/${encodeURIComponent(id)}`));
      if (currentHold.get() === id) currentHold.clear();
      announce(resale ? 'Ticket released.' : 'Seats released.');
      go(`#/events/${hold.event_id}`);
    } catch (err) {
      showError(err);
    }
  });

  const summary = h('dl', { class: 'facts' },
    h('dt', {}, 'Event'), h('dd', { 'data-testid': 'hold-event' }, ev ? h('a', { href: `#/events/${hold.event_id}` }, ev.name) : `Event ${hold.event_id}`),
    h('dt', {}, 'Places'), h('dd', {}, placesList(hold, ev, 'hold-seats')),
    h('dt', {}, 'Total'), h('dd', { 'data-testid': 'hold-amount' }, formatCents(hold.amount_cents)),
    h('dt', {}, 'Status'), h('dd', {}, status),
    h('dt', {}, 'Hold reference'), h('dd', { 'data-testid': 'hold-id' }, h('code', {}, hold.id)));

  const children = [summary];
  if (hold.status === 'held') {
    children.unshift(h('p', { class: 'countdown-box' },
      h('span', { id: 'countdown-label' }, 'Time left to pay: '), timer));
    children.push(form);
  } else {
    if (currentHold.get() === id) currentHold.clear();
    const why = {
      confirmed: h('p', {}, 'This hold has been paid for. ', h('a', { href: hold.order_id ? `#/orders/${hold.order_id}` : '#/orders' }, 'See the order'), '.'),
      expired: h('p', {}, resale ? 'This hold expired and the ticket went back on resale. ' : 'This hold expired and the seats were released. ', again(), '.'),
      released: h('p', {}, resale ? 'This ticket was released. ' : 'These seats were released. ', again(), '.'),
    }[hold.status];
    children.push(why || null);
  }
  page(hold.status === 'held' ? (resale ? 'Your resale ticket is held' : 'Your seats are held') : 'Your hold',
    h('section', { 'data-testid': 'hold-page', 'data-hold-id': hold.id, 'data-status': hold.status, 'data-listing-id': hold.listing_id || null }, ...children));
  if (hold.status === 'held') {
    tick();
    ctx.every(250, tick);
  }
}

async function ordersPage(ctx) {
  if (!user()) {
    needSignIn('#/orders');
    return;
  }
  page('My orders', loading());
  const data = await api.get('/api/orders');
  if (!ctx.live()) return;
  if (!data.orders.length) {
    page('My orders', h('p', { 'data-testid': 'orders-empty' }, 'No orders yet. ', h('a', { href: '#/' }, 'Find an event'), '.'));
    return;
  }
  const rows = data.orders.map((o) => {
    const name = h('a', { href: `#/orders/${o.id}` }, `Event ${o.event_id}`);
    eventInfo(o.event_id).then((ev) => { name.textContent = ev.name; }).catch(() => {});
    return h('tr', { 'data-testid': 'order-row', 'data-order-id': o.id },
      h('td', {}, name),
      h('td', {}, o.seats && o.seats.length ? o.seats.map(seatLabel).join('; ') : `${o.quantity} place${o.quantity === 1 ? '' : 's'}`),
      h('td', { class: 'num' }, formatCents(o.amount_cents)),
      h('td', {}, h('span', { class: `badge ${o.status}` }, o.status)),
      h('td', {}, o.created_at ? h('time', { datetime: o.created_at }, formatTime(o.created_at)) : ''));
  });
  page('My orders',
    h('table', { class: 'orders', 'data-testid': 'orders-list' },
      h('caption', { class: 'visually-hidden' }, 'Your orders, newest first'),
      h('thead', {}, h('tr', {}, ['Event', 'Places', 'Total', 'Status', 'Ordered'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

async function orderPage(ctx, id) {
  if (!user()) {
    needSignIn(`#/orders/${id}`);
    return;
  }
  page('Order', loading());
  const o = await api.get(`/api/orders/${encodeURIComponent(id)}`);
  if (!ctx.live()) return;
  const ev = await eventInfo(o.event_id).catch(() => null);
  if (!ctx.live()) return;
  page(o.status === 'confirmed' ? 'Order confirmed' : `Order ${o.status}`,
    h('section', { class: 'confirmation', 'data-testid': 'order-confirmation', 'data-order-id': o.id },
      h('p', { class: 'lead' }, o.status === 'confirmed' ? 'Thank you! Your tickets are booked.' : ''),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Event'), h('dd', {}, ev ? h('a', { href: `#/events/${o.event_id}` }, ev.name) : `Event ${o.event_id}`),
        ev ? [h('dt', {}, 'When'), h('dd', {}, formatTime(ev.starts_at), ' · ', ev.venue)] : null,
        h('dt', {}, 'Places'), h('dd', {}, placesList(o, ev, 'order-seats')),
        o.listing_id ? [h('dt', {}, 'Bought'), h('dd', { 'data-testid': 'order-resale' }, 'On resale, from another fan')] : null,
        h('dt', {}, 'Total'), h('dd', { 'data-testid': 'order-amount' }, formatCents(o.amount_cents)),
        h('dt', {}, 'Status'), h('dd', { 'data-testid': 'order-status' }, o.status),
        h('dt', {}, 'Order number'), h('dd', { 'data-testid': 'order-id' }, h('code', {}, o.id)),
        o.payment ? [h('dt', {}, 'Payment'), h('dd', {}, `${o.payment.status} · `, h('code', {}, o.payment.id))] : null),
      h('p', {}, h('a', { href: '#/orders', 'data-testid': 'to-orders' }, 'All my orders'))));
}

function accountPage(ctx, mode, params) {
  const signingUp = mode === 'signup';
  const next = params.get('next') || '#/';
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true, 'data-testid': `${mode}-email` });
  const password = h('input', {
    type: 'password', name: 'password', required: true, minlength: signingUp ? 8 : null,
    autocomplete: signingUp ? 'new-password' : 'current-password', 'data-testid': `${mode}-password`,
  });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': `${mode}-submit` }, signingUp ? 'Create account' : 'Sign in');
  const form = h('form', { class: 'narrow', 'data-testid': `${mode}-form` },
    field('Email', email),
    field('Password', password, signingUp ? 'At least 8 characters.' : null),
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError();
    try {
      await busy(submit, signingUp ? 'Creating…' : 'Signing in…', () =>
        (signingUp ? api.signUp(email.value, password.value) : api.signIn(email.value, password.value)));
      renderAccount();
      go(next.startsWith('#/') ? next : '#/');
    } catch (err) {
      showError(err);
      password.focus();
    }
  });
  const other = signingUp
    ? h('p', {}, 'Have an account? ', h('a', { href: `#/signin?next=${encodeURIComponent(next)}` }, 'Sign in'))
    : h('p', {}, 'New here? ', h('a', { href: `#/signup?next=${encodeURIComponent(next)}`, 'data-testid': 'to-signup' }, 'Create an account'));
  const forgot = signingUp ? null : h('p', {}, h('a', { href: '#/forgot', 'data-testid': 'to-forgot' }, 'Forgot your password?'));
  page(signingUp ? 'Create an account' : 'Sign in', form, forgot, other);
  email.focus();
}

const {
  myEventsPage, eventFormPage, manageEventPage, auditLogPage,
} = organiserPages({
  api, page, loading, busy, showError, clearError, user, needSignIn, announce,
  rerender: () => render(),
});

const {
  accountPage: myAccountPage, verifyEmailPage, forgotPage, resetPasswordPage, unverifiedNotice, reverified,
} = accountPages({
  api, page, loading, busy, clearError, user, needSignIn, announce, renderAccount,
  signedOut: () => {
    currentHold.clear();
    renderAccount();
  },
});

const { myTicketsPage, gatePage, resaleSection } = ticketPages({
  api, page, loading, busy, showError, clearError, user, needSignIn, eventInfo, sectionName, announce,
  unverifiedNotice, reverified,
  rerender: () => render(),
  holdStarted: (held) => {
    currentHold.set(held.id);
    go('#/hold');
  },
});

function notFoundPage() {
  page('Not found', h('p', {}, 'There is no such page. ', h('a', { href: '#/' }, 'See the events on sale'), '.'));
}

// ---------------------------------------------------------------------------
// router
// ---------------------------------------------------------------------------

let current = null; // the live page's context

function context() {
  const timers = [];
  const ctx = {
    alive: true,
    live: () => ctx.alive,
    /** Runs fn every ms while the page is shown, never two at once. */
    every(ms, fn) {
      let running = false;
      timers.push(setInterval(async () => {
        if (running || !ctx.alive || document.hidden) return;
        running = true;
        try {
          await fn();
        } catch (e) {
          if (ctx.alive) showError(e);
        } finally {
          running = false;
        }
      }, ms));
    },
    stop() {
      ctx.alive = false;
      for (const t of timers) clearInterval(t);
    },
  };
  return ctx;
}

async function render() {
  if (current) current.stop();
  const ctx = context();
  current = ctx;
  clearError();
  const raw = window.location.hash || '#/';
  const [path, query = ''] = raw.split('?');
  const params = new URLSearchParams(query);
  const parts = path.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  renderAccount();
  renderResume(path);
  try {
    switch (parts[0] || '') {
      case '':
      case 'events':
        if (parts[1]) await eventPage(ctx, parts[1]);
        else await eventsPage(ctx);
        break;
      case 'hold': await holdPage(ctx, null); break;
      case 'holds': await holdPage(ctx, parts[1]); break;
      case 'orders':
        if (parts[1]) await orderPage(ctx, parts[1]);
        else await ordersPage(ctx);
        break;
      case 'tickets': await myTicketsPage(ctx); break;
      case 'gate': await gatePage(ctx); break;
      case 'signin': accountPage(ctx, 'signin', params); break;
      case 'signup': accountPage(ctx, 'signup', params); break;
      case 'manage':
        if (parts[1] === 'new') eventFormPage(ctx, '#/manage/new');
        else if (parts[1]) await manageEventPage(ctx, parts[1], params);
        else await myEventsPage(ctx);
        break;
      case 'admin':
        if (parts[1] === 'audit') await auditLogPage(ctx);
        else eventFormPage(ctx, '#/admin');
        break;
      case 'account': await myAccountPage(ctx); break;
      case 'verify-email': await verifyEmailPage(ctx, params); break;
      case 'forgot': forgotPage(ctx, params); break;
      case 'reset-password': resetPasswordPage(ctx, params); break;
      default: notFoundPage();
    }
  } catch (err) {
    if (!ctx.live()) return;
    if (err instanceof ApiError && err.status === 401) {
      needSignIn(raw);
      return;
    }
    fill(app, h('h1', {}, err instanceof ApiError && err.status === 404 ? 'Not found' : 'Could not load this page'),
      h('p', {}, h('a', { href: '#/' }, 'Back to the events')));
    showError(err);
  }
  if (ctx.live()) {
    app.dataset.ready = raw;
  }
}

window.addEventListener('hashchange', () => {
  render().then(() => {
    // Move focus to the new page (for screen readers) unless the page focused a field itself.
    if (!app.contains(document.activeElement)) app.focus();
  });
});
window.addEventListener('storage', (e) => {
  if (e.key === 'stampede.session') renderAccount();
});
// An account e-mail's link (/verify-email?token=…, /reset-password?token=…;
// nginx serves this page for any path) opens its hash route at /.
const linked = routeFromPath(window.location.pathname, window.location.search);
if (linked) window.history.replaceState(null, '', `/${linked}`);
render();
