// The organiser pages: "My events" (#/manage: the events the caller manages,
// drafts included, from GET /api/events?managed=true, each with its status,
// start time and links to its report and audit trail; a "New event" button),
// the event form (#/manage/new and #/admin: create a draft, publish it, then
// manage it), an event's manage page (#/manage/{id}: the sales report with
// its totals, a table by section, a CSV download and a Refresh button; the
// audit trail with "Older entries"; Publish now for a draft), and the admins' audit log
// (#/admin/audit). Organisers manage their own events, admins all of them:
// another organiser's event answers 404 and shows "Not found"; customers and
// gate staff get "Only organisers and admins".
//
// The app shell (page, api, busy, …) is passed in by app.js. The helpers
// exported above organiserPages() are DOM-free and unit-tested
// (web/tests/organiser.test.mjs).

import { ApiError } from './api.js';
import { h, fill, field } from './dom.js';
import { formatCents, formatTime, eventBody, dateToLocalInput, seatLabel } from './format.js';

// ---------------------------------------------------------------------------
// pure helpers
// ---------------------------------------------------------------------------

/** Whether a user (the session's) may manage events: organisers and admins. */
export function canManage(user) {
  return Boolean(user) && (user.role === 'organiser' || user.role === 'admin');
}

/** An event's status as a word: "Draft", "Published". */
export function eventStatusText(status) {
  if (status === 'draft') return 'Draft';
  if (status === 'published') return 'Published';
  return String(status || 'Unknown');
}

const ACTIONS = {
  'event.create': 'Created',
  'event.update': 'Changed',
  'event.publish': 'Published',
  'ticket.check_in': 'Checked in',
  'user.role': 'Role changed',
};

/** An audit entry's action in human words ("event.publish" → "Published"). */
export function auditActionText(action) {
  return ACTIONS[action] || String(action || '').replace(/[._]/g, ' ') || 'Unknown';
}

/** Who acted: "you" for the caller, "the command line" when no user did, else "user 7". */
export function auditWho(entry, me) {
  const actor = entry && entry.actor_id != null ? String(entry.actor_id) : null;
  if (actor === null) return 'the command line';
  if (me && me.id != null && String(me.id) === actor) return 'you';
  return `user ${actor}`;
}

/** "event:42" → "42"; null for any other target. */
export function targetEventId(target) {
  const m = /^event:(\d+)$/.exec(String(target || ''));
  return m ? m[1] : null;
}

// The event fields an update may change, with their words.
const EVENT_FIELDS = [
  ['name', 'name'],
  ['venue', 'venue'],
  ['starts_at', 'start time'],
  ['sale_starts_at', 'sale start'],
  ['hold_seconds', 'hold time'],
  ['per_user_limit', 'per-customer limit'],
  ['waiting_room', 'waiting room'],
  ['verified_email_required', 'verified e-mail requirement'],
];

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sectionsText(sections) {
  if (!Array.isArray(sections) || !sections.length) return '';
  return sections.map((s) => {
    const size = s.general_admission ? `${s.capacity} standing` : `${s.rows}×${s.seats_per_row} seats`;
    return `${s.name} (${size}, ${formatCents(s.price_cents)})`;
  }).join('; ');
}

function plainValue(v) {
  if (v === true) return 'yes';
  if (v === false) return 'no';
  if (v === null || v === undefined) return '–';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * One line saying what an audit entry did, from its details (before/after
 * where the change has them): a new event's name, venue and sections; the
 * fields an update changed; a publication's versions; a role's change.
 */
export function auditDetailsText(entry) {
  const d = entry && entry.details && typeof entry.details === 'object' ? entry.details : {};
  const before = d.before && typeof d.before === 'object' ? d.before : null;
  const after = d.after && typeof d.after === 'object' ? d.after : null;
  switch (entry && entry.action) {
    case 'event.create': {
      if (!after) return '';
      const secs = sectionsText(after.sections);
      return [`“${after.name}” at ${after.venue}`, after.starts_at ? `starts ${formatTime(after.starts_at)}` : null, secs ? `sections: ${secs}` : null]
        .filter(Boolean).join(' · ');
    }
    case 'event.update': {
      if (!before || !after) return '';
      const changed = [];
      for (const [key, words] of EVENT_FIELDS) {
        if (!same(before[key], after[key])) {
          const show = key.endsWith('_at') ? (v) => (v ? formatTime(v) : '–') : plainValue;
          changed.push(`${words}: ${show(before[key])} → ${show(after[key])}`);
        }
      }
      if (!same(before.sections, after.sections)) changed.push(`sections: ${sectionsText(after.sections) || 'none'}`);
      return changed.length ? changed.join(' · ') : 'no visible change';
    }
    case 'event.publish':
      return `${eventStatusText(before && before.status)} → ${eventStatusText(after && after.status)}${after && after.version != null ? ` (version ${after.version})` : ''}`;
    case 'ticket.check_in': {
      // details: {role, owner_id, section_id, seat, version}; target ticket:<public id>.
      const ticket = /^ticket:(.+)$/.exec(String(entry.target || ''));
      const place = d.seat ? seatLabel(d.seat) : 'general admission';
      return [ticket ? `Ticket ${ticket[1]}` : null, place, d.role ? `by the ${d.role}` : null].filter(Boolean).join(' · ');
    }
    case 'user.role':
      return `${entry.target ? `${String(entry.target).replace(':', ' ')}: ` : ''}${plainValue(before && before.role)} → ${plainValue(after && after.role)}`;
    default: {
      // Anything newer: its fields, briefly.
      const parts = Object.entries(d)
        .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
        .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${plainValue(v)}`);
      return parts.join(' · ');
    }
  }
}

/** An audit entry as the list shows it. */
export function auditRow(entry, me) {
  return {
    id: String(entry.id),
    at: entry.at,
    when: formatTime(entry.at),
    who: auditWho(entry, me),
    action: auditActionText(entry.action),
    details: auditDetailsText(entry),
    target: entry.target || '',
    eventId: targetEventId(entry.target),
  };
}

/**
 * The report's section table: a row per section, then the totals row
 * (capacity summed). Numbers stay numbers; `revenue` is formatted.
 */
export function reportRows(report) {
  const rows = (report.by_section || []).map((s) => ({
    id: String(s.section_id),
    name: s.name,
    capacity: s.capacity,
    sold: s.sold,
    held: s.held,
    available: s.available,
    revenue_cents: s.revenue_cents,
    revenue: formatCents(s.revenue_cents),
  }));
  const total = {
    id: 'total',
    name: 'Total',
    capacity: rows.reduce((n, r) => n + (Number(r.capacity) || 0), 0),
    sold: report.sold,
    held: report.held,
    available: report.available,
    revenue_cents: report.revenue_cents,
    revenue: formatCents(report.revenue_cents),
  };
  return { rows, total };
}

/** The report's headline figures, in the order shown: [{key, label, value}]. */
export function reportTotals(report) {
  const list = [
    { key: 'sold', label: 'Sold', value: String(report.sold) },
    { key: 'held', label: 'Held', value: String(report.held) },
    { key: 'available', label: 'Available', value: String(report.available) },
    { key: 'revenue', label: 'Revenue', value: formatCents(report.revenue_cents) },
    { key: 'refunds', label: 'Refunds', value: formatCents(report.refunds_cents) },
  ];
  if (report.resale_cents != null) list.push({ key: 'resale', label: 'Resold by fans', value: formatCents(report.resale_cents) });
  return list;
}

/** The CSV download's file name: "event-42-report.csv" (the id kept to safe characters). */
export function csvFileName(eventId) {
  const id = String(eventId ?? '').replace(/[^A-Za-z0-9_-]/g, '') || 'unknown';
  return `event-${id}-report.csv`;
}

/** GET /api/events?managed=true, a page on: the events the caller manages, drafts included. */
export function managedEventsPath(cursor) {
  return `/api/events?managed=true${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
}

/** An audit page's path: an event's trail (eventId set) or the admins' log. */
export function auditPath(eventId, cursor) {
  const base = eventId == null ? '/api/admin/audit' : `/api/events/${encodeURIComponent(eventId)}/audit`;
  return cursor ? `${base}?cursor=${encodeURIComponent(cursor)}` : base;
}

/** What an API failure on a manage page means to the user: 'not-found', 'forbidden' or null. */
export function manageFailure(err) {
  if (!(err instanceof ApiError)) return null;
  if (err.status === 404) return 'not-found';
  if (err.status === 403) return 'forbidden';
  return null;
}

// ---------------------------------------------------------------------------
// pages
// ---------------------------------------------------------------------------

export function organiserPages(shell) {
  const {
    api, page, loading, busy, showError, clearError, user, needSignIn, announce, rerender,
  } = shell;

  function forbidden(title) {
    const u = user();
    page(title, h('p', { class: 'notice', 'data-testid': 'manage-forbidden' },
      'Only organisers and admins can manage events.',
      u ? ` You are signed in as ${u.email}.` : ''));
  }

  function notFound() {
    page('Not found', h('p', { 'data-testid': 'manage-not-found' },
      'There is no such event among the events you manage. ', h('a', { href: '#/manage' }, 'See my events'), '.'));
  }

  /** Signed in, and allowed: else shows why and returns false. */
  function mayManage(route, title) {
    const u = user();
    if (!u) {
      needSignIn(route);
      return false;
    }
    if (!canManage(u)) {
      forbidden(title);
      return false;
    }
    return true;
  }

  /** Shows the page a 403/404 deserves; true when it did. */
  function failurePage(err, title) {
    const f = manageFailure(err);
    if (f === 'not-found') notFound();
    else if (f === 'forbidden') forbidden(title);
    else return false;
    return true;
  }

  // -------------------------------------------------------------------------
  // #/manage: My events
  // -------------------------------------------------------------------------

  async function myEventsPage(ctx) {
    if (!mayManage('#/manage', 'My events')) return;
    const body = h('tbody', {});
    const table = h('table', { class: 'orders', 'data-testid': 'managed-events' },
      h('caption', { class: 'visually-hidden' }, 'The events you manage, newest first'),
      h('thead', {}, h('tr', {}, ['Event', 'Status', 'Starts', 'Manage'].map((t) => h('th', { scope: 'col' }, t)))),
      body);
    const empty = h('p', { 'data-testid': 'managed-empty', hidden: true }, 'You have no events yet. Create one with New event.');
    const more = h('button', { type: 'button', class: 'secondary', 'data-testid': 'managed-more', hidden: true }, 'Show more events');
    const actions = h('div', { class: 'actions' },
      h('a', { href: '#/manage/new', class: 'button-link', 'data-testid': 'new-event' }, 'New event'),
      user().role === 'admin' ? h('a', { href: '#/admin/audit', 'data-testid': 'to-audit-log' }, 'Audit log') : null);
    page('My events', actions, loading());
    let cursor = null;
    async function load() {
      const data = await api.get(managedEventsPath(cursor));
      if (!ctx.live()) return;
      for (const ev of data.events) body.append(managedRow(ev));
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
      empty.hidden = body.children.length > 0;
      table.hidden = body.children.length === 0;
    }
    try {
      await load();
    } catch (err) {
      if (failurePage(err, 'My events')) return;
      throw err;
    }
    if (!ctx.live()) return;
    more.addEventListener('click', () => busy(more, 'Loading…', load).catch(showError));
    page('My events', actions, empty, table, more);
  }

  function managedRow(ev) {
    return h('tr', { 'data-testid': 'managed-event', 'data-event-id': ev.id, 'data-status': ev.status },
      h('td', {}, h('a', { href: `#/manage/${ev.id}`, 'data-testid': 'managed-name' }, ev.name),
        h('br', {}), h('small', { class: 'muted' }, ev.venue)),
      h('td', {}, h('span', { class: `badge ${ev.status}`, 'data-testid': 'managed-status' }, eventStatusText(ev.status))),
      h('td', {}, h('time', { datetime: ev.starts_at }, formatTime(ev.starts_at))),
      h('td', { class: 'links' },
        h('a', { href: `#/manage/${ev.id}`, 'data-testid': 'managed-report' }, 'Report'), ' · ',
        h('a', { href: `#/manage/${ev.id}?show=audit`, 'data-testid': 'managed-audit' }, 'Audit trail'),
        ev.status === 'published' ? [' · ', h('a', { href: `#/events/${ev.id}` }, 'Event page')] : null));
  }

  // -------------------------------------------------------------------------
  // #/manage/new and #/admin: the event form
  // -------------------------------------------------------------------------

  function eventFormPage(ctx, route) {
    if (!mayManage(route, 'Create an event')) return;
    const u = user();
    const now = new Date();
    const inputs = {
      name: h('input', { required: true, maxlength: 200, 'data-testid': 'admin-name' }),
      venue: h('input', { required: true, maxlength: 200, 'data-testid': 'admin-venue' }),
      starts_at: h('input', { type: 'datetime-local', required: true, 'data-testid': 'admin-starts-at', value: dateToLocalInput(new Date(now.getTime() + 30 * 86_400_000)) }),
      sale_starts_at: h('input', { type: 'datetime-local', required: true, 'data-testid': 'admin-sale-starts-at', value: dateToLocalInput(new Date(now.getTime() - 60_000)) }),
      hold_seconds: h('input', { type: 'number', min: 1, max: 3600, value: 600, 'data-testid': 'admin-hold-seconds' }),
      per_user_limit: h('input', { type: 'number', min: 1, max: 50, value: 4, 'data-testid': 'admin-per-user-limit' }),
      waiting_room: h('input', { type: 'checkbox', 'data-testid': 'admin-waiting-room' }),
      verified_email_required: h('input', { type: 'checkbox', 'data-testid': 'admin-verified-email' }),
    };
    const sectionList = h('div', { class: 'section-list', 'data-testid': 'admin-sections' });
    const sections = [];

    function addSection(defaults = {}) {
      const i = sections.length;
      const s = {
        name: h('input', { required: true, 'data-testid': `section-name-${i}`, value: defaults.name || '' }),
        price: h('input', { required: true, inputmode: 'decimal', pattern: '\\$?\\d+(\\.\\d{1,2})?', 'data-testid': `section-price-${i}`, value: defaults.price || '' }),
        kind: h('select', { 'data-testid': `section-kind-${i}` },
          h('option', { value: 'seated' }, 'Seated (rows × seats)'), h('option', { value: 'ga' }, 'General admission')),
        rows: h('input', { type: 'number', min: 1, 'data-testid': `section-rows-${i}`, value: defaults.rows || 10 }),
        seats_per_row: h('input', { type: 'number', min: 1, 'data-testid': `section-seats-per-row-${i}`, value: defaults.seats_per_row || 20 }),
        capacity: h('input', { type: 'number', min: 1, 'data-testid': `section-capacity-${i}`, value: defaults.capacity || 500 }),
      };
      const seated = h('div', { class: 'inline' }, field('Rows', s.rows), field('Seats per row', s.seats_per_row));
      const ga = h('div', { class: 'inline' }, field('Capacity', s.capacity));
      const sync = () => {
        const isGa = s.kind.value === 'ga';
        seated.hidden = isGa;
        ga.hidden = !isGa;
        s.rows.required = !isGa;
        s.seats_per_row.required = !isGa;
        s.capacity.required = isGa;
      };
      s.kind.addEventListener('change', sync);
      const remove = h('button', { type: 'button', class: 'link', 'data-testid': `section-remove-${i}` }, 'Remove');
      const box = h('fieldset', { class: 'section-input', 'data-testid': `admin-section-${i}` },
        h('legend', {}, `Section ${i + 1}`),
        h('div', { class: 'inline' }, field('Name', s.name), field('Price (USD)', s.price, 'e.g. 45.00'), field('Kind', s.kind)),
        seated, ga, remove);
      remove.addEventListener('click', () => {
        const at = sections.indexOf(s);
        if (at >= 0 && sections.length > 1) {
          sections.splice(at, 1);
          box.remove();
        }
      });
      if (defaults.kind) s.kind.value = defaults.kind;
      sync();
      sections.push(s);
      sectionList.append(box);
    }
    addSection({ name: 'Stalls', price: '45.00', rows: 8, seats_per_row: 12 });

    const create = h('button', { type: 'submit', class: 'primary', 'data-testid': 'admin-create' }, 'Create draft event');
    const result = h('div', { class: 'result', 'data-testid': 'admin-result', 'aria-live': 'polite' });
    const form = h('form', { 'data-testid': 'admin-form', 'aria-label': 'New event' },
      h('div', { class: 'inline' }, field('Event name', inputs.name), field('Venue', inputs.venue)),
      h('div', { class: 'inline' },
        field('Starts at', inputs.starts_at, 'Your local time'),
        field('Sale starts at', inputs.sale_starts_at, 'Before the event starts')),
      h('div', { class: 'inline' },
        field('Hold time (seconds)', inputs.hold_seconds, 'How long a customer has to pay'),
        field('Per-customer limit', inputs.per_user_limit, '1 to 50 seats')),
      h('div', { class: 'inline' },
        field('Waiting room', inputs.waiting_room, 'Customers queue first and are let in at a steady rate'),
        field('Requires a verified e-mail to buy', inputs.verified_email_required, 'Only customers who confirmed their e-mail address can hold seats')),
      h('h2', {}, 'Sections'),
      sectionList,
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'admin-add-section', onclick: () => addSection() }, 'Add a section'),
      h('div', { class: 'actions' }, create));

    function showCreated(ev) {
      const status = h('span', { 'data-testid': 'admin-status' }, ev.status);
      const publish = h('button', { type: 'button', class: 'primary', 'data-testid': 'admin-publish', hidden: ev.status !== 'draft' }, 'Publish now');
      const link = h('a', { href: `#/events/${ev.id}`, 'data-testid': 'admin-event-link', hidden: ev.status !== 'published' }, 'Open the event page');
      const manage = h('a', { href: `#/manage/${ev.id}`, 'data-testid': 'admin-manage-link' }, 'Manage this event');
      publish.addEventListener('click', async () => {
        clearError();
        try {
          const done = await busy(publish, 'Publishing…', () => api.post(`/api/events/${encodeURIComponent(ev.id)}/publish`));
          status.textContent = done.status;
          publish.hidden = true;
          link.hidden = false;
          announce(`${done.name} is published.`);
        } catch (err) {
          showError(err);
        }
      });
      fill(result, h('div', { class: 'card', 'data-testid': 'admin-created', 'data-event-id': ev.id },
        h('h2', {}, ev.name),
        h('p', {}, `Event ${ev.id} · version ${ev.version} · status `, status),
        h('p', {}, ev.sections.map((s) => `${s.name}: ${s.capacity} places at ${formatCents(s.price_cents)}`).join(' · ')),
        ev.verified_email_required ? h('p', { 'data-testid': 'admin-verified-note' }, 'Buyers need a verified e-mail address.') : null,
        h('div', { class: 'actions' }, publish, link, manage)));
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError();
      const values = {
        name: inputs.name.value,
        venue: inputs.venue.value,
        starts_at: inputs.starts_at.value,
        sale_starts_at: inputs.sale_starts_at.value,
        hold_seconds: inputs.hold_seconds.value,
        per_user_limit: inputs.per_user_limit.value,
        waiting_room: inputs.waiting_room.checked,
        verified_email_required: inputs.verified_email_required.checked,
        sections: sections.map((s) => ({
          name: s.name.value, price: s.price.value, kind: s.kind.value,
          rows: s.rows.value, seats_per_row: s.seats_per_row.value, capacity: s.capacity.value,
        })),
      };
      try {
        const ev = await busy(create, 'Creating…', () => api.post('/api/events', eventBody(values)));
        showCreated(ev);
        announce(`Draft event ${ev.name} created.`);
      } catch (err) {
        showError(err);
      }
    });

    const byId = h('input', { inputmode: 'numeric', pattern: '\\d+', required: true, 'data-testid': 'admin-publish-id' });
    const lookup = h('form', { class: 'inline', 'aria-label': 'Publish a draft by id' },
      field('Draft event id', byId), h('button', { type: 'submit', class: 'secondary' }, 'Look up'));
    lookup.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError();
      try {
        showCreated(await api.get(`/api/events/${encodeURIComponent(byId.value.trim())}`));
      } catch (err) {
        showError(err);
      }
    });

    page('Create an event',
      h('p', { class: 'actions' },
        h('a', { href: '#/manage', 'data-testid': 'to-my-events' }, 'My events'),
        u.role === 'admin' ? h('a', { href: '#/admin/audit', 'data-testid': 'admin-audit-link' }, 'Audit log') : null),
      form, result, h('h2', {}, 'Publish an existing draft'), lookup);
  }

  // -------------------------------------------------------------------------
  // the audit list (an event's trail, the admins' log)
  // -------------------------------------------------------------------------

  /**
   * A table of audit entries, newest first, with "Older entries" while the
   * API has a next_cursor. `fetchPage(cursor)` answers {entries, next_cursor}.
   * Returns {el, load}; load() fetches the first page again.
   */
  function auditList(ctx, fetchPage, { showTarget = false, label }) {
    const body = h('tbody', {});
    const empty = h('p', { class: 'muted', 'data-testid': 'audit-empty', hidden: true }, 'No entries yet.');
    const heads = ['Time', 'Who', 'Action', showTarget ? 'Target' : null, 'Details'].filter(Boolean);
    const table = h('table', { class: 'orders audit', 'data-testid': 'audit-list' },
      h('caption', { class: 'visually-hidden' }, label),
      h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))),
      body);
    const older = h('button', { type: 'button', class: 'secondary', 'data-testid': 'audit-older', hidden: true }, 'Older entries');
    let cursor = null;

    function row(entry) {
      const r = auditRow(entry, user());
      const target = r.eventId ? h('a', { href: `#/manage/${r.eventId}` }, r.target) : r.target;
      return h('tr', {
        'data-testid': 'audit-entry', 'data-entry-id': r.id, 'data-action': entry.action,
        'data-actor': entry.actor_id ?? '', 'data-target': r.target,
      },
      h('td', {}, h('time', { datetime: r.at }, r.when)),
      h('td', { 'data-testid': 'audit-who' }, r.who),
      h('td', { 'data-testid': 'audit-action' }, r.action),
      showTarget ? h('td', {}, target) : null,
      h('td', { 'data-testid': 'audit-details' }, r.details));
    }

    async function more(first) {
      const data = await fetchPage(first ? null : cursor);
      if (!ctx.live()) return;
      if (first) fill(body);
      for (const e of data.entries) body.append(row(e));
      cursor = data.next_cursor || null;
      older.hidden = !cursor;
      empty.hidden = body.children.length > 0;
      table.hidden = body.children.length === 0;
    }
    older.addEventListener('click', () => busy(older, 'Loading…', () => more(false)).catch(showError));
    return { el: h('div', { class: 'audit-box' }, empty, table, older), load: () => more(true) };
  }

  // -------------------------------------------------------------------------
  // #/manage/{id}: report and audit trail
  // -------------------------------------------------------------------------

  /** GET path as text with the session's bearer token (one refresh on 401). */
  async function fetchText(path, accept) {
    const send = () => {
      const s = api.session.get();
      const headers = { accept };
      if (s && s.access_token) headers.authorization = `Bearer ${s.access_token}`;
      return window.fetch(path, { headers });
    };
    let resp;
    try {
      resp = await send();
      if (resp.status === 401 && await api.refresh()) resp = await send();
    } catch (e) {
      throw new ApiError({ status: 0, code: 'network', detail: `network error: ${e && e.message ? e.message : 'the server could not be reached'}` });
    }
    const text = await resp.text();
    if (!resp.ok) {
      let b = {};
      try {
        b = JSON.parse(text);
      } catch {
        // not a problem document
      }
      throw new ApiError({ status: resp.status, code: b.code || `http_${resp.status}`, detail: b.detail || b.title || `${resp.status} error`, body: b });
    }
    return text;
  }

  function reportView(report) {
    const { rows, total } = reportRows(report);
    const cells = (r, head) => [
      head ? h('th', { scope: 'row' }, r.name) : h('td', {}, r.name),
      ...['capacity', 'sold', 'held', 'available'].map((k) => h('td', { class: 'num', 'data-col': k }, String(r[k]))),
      h('td', { class: 'num', 'data-col': 'revenue' }, r.revenue),
    ];
    return [
      h('dl', { class: 'facts totals', 'data-testid': 'report-totals' },
        reportTotals(report).map((t) => [h('dt', {}, t.label), h('dd', { 'data-testid': `report-${t.key}` }, t.value)])),
      h('table', { class: 'orders', 'data-testid': 'report-sections' },
        h('caption', { class: 'visually-hidden' }, 'Sales by section'),
        h('thead', {}, h('tr', {}, ['Section', 'Capacity', 'Sold', 'Held', 'Available', 'Revenue'].map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null }, t)))),
        h('tbody', {}, rows.map((r) => h('tr', { 'data-testid': 'report-row', 'data-section-id': r.id }, cells(r, false)))),
        h('tfoot', {}, h('tr', { 'data-testid': 'report-total-row' }, cells(total, true)))),
    ];
  }

  async function manageEventPage(ctx, id, params) {
    if (!mayManage(`#/manage/${id}`, 'Manage an event')) return;
    page('Manage an event', loading());
    const eid = encodeURIComponent(id);
    let report;
    let ev;
    try {
      // The report answers 404 for an event the caller does not manage.
      report = await api.get(`/api/events/${eid}/report`);
      ev = await api.get(`/api/events/${eid}`).catch(() => null);
    } catch (err) {
      if (!ctx.live()) return;
      if (failurePage(err, 'Manage an event')) return;
      throw err;
    }
    if (!ctx.live()) return;

    const reportBox = h('div', { 'data-testid': 'report', 'data-status': report.status }, reportView(report));
    const stamp = h('p', { class: 'muted', 'data-testid': 'report-time', 'aria-live': 'polite' }, `As of ${formatTime(new Date().toISOString())}`);
    const refresh = h('button', { type: 'button', class: 'secondary', 'data-testid': 'report-refresh' }, 'Refresh');
    const download = h('button', { type: 'button', class: 'secondary', 'data-testid': 'report-csv' }, 'Download CSV');
    const saved = h('a', { 'data-testid': 'report-csv-link', hidden: true }, 'Save the CSV again');
    let blobUrl = null;

    refresh.addEventListener('click', async () => {
      clearError();
      try {
        const r = await busy(refresh, 'Refreshing…', () => api.get(`/api/events/${eid}/report`));
        if (!ctx.live()) return;
        fill(reportBox, reportView(r));
        reportBox.dataset.status = r.status;
        stamp.textContent = `As of ${formatTime(new Date().toISOString())}`;
        announce('The report is up to date.');
      } catch (err) {
        showError(err);
      }
    });
    download.addEventListener('click', async () => {
      clearError();
      try {
        const text = await busy(download, 'Preparing…', () => fetchText(`/api/events/${eid}/report?format=csv`, 'text/csv'));
        if (!ctx.live()) return;
        if (blobUrl) URL.revokeObjectURL(blobUrl);
        blobUrl = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
        saved.href = blobUrl;
        saved.download = csvFileName(id);
        saved.hidden = false;
        saved.click();
        announce(`The report is downloaded as ${csvFileName(id)}.`);
      } catch (err) {
        showError(err);
      }
    });

    const trail = auditList(ctx, (cursor) => api.get(auditPath(id, cursor)),
      { label: 'This event\'s audit trail, newest first' });
    const name = ev ? ev.name : `Event ${id}`;
    const status = ev ? ev.status : report.status;
    // A draft is published from here too (as from the event form).
    const publish = status === 'draft'
      ? h('button', { type: 'button', class: 'primary', 'data-testid': 'manage-publish' }, 'Publish now')
      : null;
    publish?.addEventListener('click', async () => {
      clearError();
      try {
        const done = await busy(publish, 'Publishing…', () => api.post(`/api/events/${eid}/publish`));
        announce(`${done.name} is published.`);
        if (ctx.live()) rerender();
      } catch (err) {
        showError(err);
      }
    });
    page(name,
      h('p', { class: 'lead', 'data-testid': 'manage-meta' },
        h('span', { class: `badge ${status}`, 'data-testid': 'manage-status' }, eventStatusText(status)),
        ev ? [' ', ev.venue, ' · ', h('time', { datetime: ev.starts_at }, formatTime(ev.starts_at))] : null),
      h('p', { class: 'actions' },
        publish,
        h('a', { href: '#/manage', 'data-testid': 'to-my-events' }, 'My events'),
        status === 'published' ? h('a', { href: `#/events/${id}` }, 'Event page') : null),
      h('section', { class: 'section', 'aria-labelledby': 'report-heading' },
        h('header', { class: 'section-head' }, h('h2', { id: 'report-heading' }, 'Sales report'), stamp),
        reportBox,
        h('div', { class: 'actions' }, refresh, download, saved)),
      h('section', { class: 'section', id: 'audit', 'aria-labelledby': 'audit-heading', 'data-testid': 'audit-trail' },
        h('h2', { id: 'audit-heading', tabindex: '-1' }, 'Audit trail'),
        trail.el));
    await trail.load();
    if (ctx.live() && params && params.get('show') === 'audit') {
      const head = document.getElementById('audit-heading');
      head.scrollIntoView();
      head.focus();
    }
  }

  // -------------------------------------------------------------------------
  // #/admin/audit: every entry, for admins
  // -------------------------------------------------------------------------

  async function auditLogPage(ctx) {
    const u = user();
    if (!u) {
      needSignIn('#/admin/audit');
      return;
    }
    if (u.role !== 'admin') {
      page('Audit log', h('p', { class: 'notice', 'data-testid': 'manage-forbidden' }, 'Only admins can read the audit log. You are signed in as ', u.email, '.'));
      return;
    }
    const list = auditList(ctx, (cursor) => api.get(auditPath(null, cursor)),
      { showTarget: true, label: 'Every admin and organiser action, newest first' });
    page('Audit log', loading());
    try {
      await list.load();
    } catch (err) {
      if (manageFailure(err) === 'forbidden') {
        page('Audit log', h('p', { class: 'notice', 'data-testid': 'manage-forbidden' }, 'Only admins can read the audit log.'));
        return;
      }
      throw err;
    }
    if (!ctx.live()) return;
    page('Audit log',
      h('p', { class: 'lead' }, 'Every write by an admin or an organiser: events created, changed and published, roles changed.'),
      h('p', { class: 'actions' }, h('a', { href: '#/admin' }, 'Create an event'), h('a', { href: '#/manage' }, 'My events')),
      list.el);
  }

  return { myEventsPage, eventFormPage, manageEventPage, auditLogPage };
}
