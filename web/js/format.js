// Pure helpers: money, times, countdowns, seat maps. No DOM, so node tests them.

const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

/** 8000 → "$80.00". */
export function formatCents(cents) {
  return money.format((Number(cents) || 0) / 100);
}

/** "12.50" → 1250; empty or bad → NaN. */
export function parseMoneyToCents(text) {
  const t = String(text).trim().replace(/^\$/, '');
  if (!/^\d+(\.\d{1,2})?$/.test(t)) return NaN;
  const [whole, frac = ''] = t.split('.');
  return Number(whole) * 100 + Number(frac.padEnd(2, '0'));
}

/** An RFC 3339 time as a short local date and time. */
export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString('en-GB', { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** Milliseconds left → "9:05" (or "1:02:03"); never negative. */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A spoken form for screen readers: "4 minutes 5 seconds left". */
export function spokenCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  if (total === 0) return 'The hold has expired.';
  const m = Math.floor(total / 60);
  const s = total % 60;
  const parts = [];
  if (m) parts.push(`${m} minute${m === 1 ? '' : 's'}`);
  if (s || !m) parts.push(`${s} second${s === 1 ? '' : 's'}`);
  return `${parts.join(' ')} left to pay.`;
}

/** A `datetime-local` value (local time) → RFC 3339 UTC, or null when empty/invalid. */
export function localInputToIso(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A Date → the `YYYY-MM-DDTHH:mm` a `datetime-local` input shows (local time). */
export function dateToLocalInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** "12:3:7" → {section:"12", row:3, number:7}; null if malformed. */
export function parseSeatId(id) {
  const m = /^(\d+):(\d+):(\d+)$/.exec(String(id));
  return m ? { section: m[1], row: Number(m[2]), number: Number(m[3]) } : null;
}

/** "12:3:7" → "Row 3, seat 7". */
export function seatLabel(id) {
  const s = parseSeatId(id);
  return s ? `Row ${s.row}, seat ${s.number}` : String(id);
}

/**
 * The seats of a section grouped by row, each row sorted by number:
 * [{row, seats:[{id,row,number,status}]}], rows ascending.
 */
export function groupRows(seats) {
  const rows = new Map();
  for (const s of seats) {
    if (!rows.has(s.row)) rows.set(s.row, []);
    rows.get(s.row).push(s);
  }
  return [...rows.keys()]
    .sort((a, b) => a - b)
    .map((row) => ({ row, seats: rows.get(row).sort((a, b) => a.number - b.number) }));
}

const ROW_STATUS = { f: 'free', h: 'held', s: 'sold' };

/**
 * A compact seat map (GET …/seats?format=rows: one status character per seat
 * of each row) as the seats the map draws: [{id, row, number, status}] in row,
 * then number, order. A character this client does not know reads as held,
 * so the seat cannot be picked.
 */
export function seatsFromRows(map) {
  const seats = [];
  for (const { row, statuses } of map.rows || []) {
    for (let i = 0; i < statuses.length; i += 1) {
      const number = i + 1;
      seats.push({ id: `${map.section_id}:${row}:${number}`, row, number, status: ROW_STATUS[statuses[i]] || 'held' });
    }
  }
  return seats;
}

/** Counts per status: {free, held, sold}. */
export function countStatuses(seats) {
  const c = { free: 0, held: 0, sold: 0 };
  for (const s of seats) c[s.status] = (c[s.status] || 0) + 1;
  return c;
}

/**
 * Drops selected seats that are no longer free (someone else took them).
 * Returns the ids dropped.
 */
export function pruneSelection(selected, seats) {
  const status = new Map(seats.map((s) => [s.id, s.status]));
  const dropped = [];
  for (const id of [...selected]) {
    const st = status.get(id);
    if (st !== undefined && st !== 'free') {
      selected.delete(id);
      dropped.push(id);
    }
  }
  return dropped;
}

/** Builds the POST /api/events body from the admin form's plain values. */
export function eventBody(form) {
  const body = {
    name: form.name.trim(),
    venue: form.venue.trim(),
    starts_at: localInputToIso(form.starts_at) || form.starts_at,
    sale_starts_at: localInputToIso(form.sale_starts_at) || form.sale_starts_at,
    sections: form.sections.map((s) => {
      const price = parseMoneyToCents(s.price);
      const sec = { name: s.name.trim(), price_cents: Number.isNaN(price) ? s.price : price };
      if (s.kind === 'ga') {
        sec.general_admission = true;
        sec.capacity = Number(s.capacity);
      } else {
        sec.rows = Number(s.rows);
        sec.seats_per_row = Number(s.seats_per_row);
      }
      return sec;
    }),
  };
  if (String(form.hold_seconds).trim() !== '') body.hold_seconds = Number(form.hold_seconds);
  if (String(form.per_user_limit).trim() !== '') body.per_user_limit = Number(form.per_user_limit);
  if (form.waiting_room) body.waiting_room = true;
  if (form.verified_email_required) body.verified_email_required = true;
  return body;
}
