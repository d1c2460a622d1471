// Tickets after the sale, the DOM-free part: what a ticket's status means to
// its holder, what a check-in answer means at the gate, what a scanned or
// pasted code is, what a transfer's problem+json tells the sender, and the
// allowlist that keeps the server's QR code SVG to drawing only.
//
// No browser globals here, so node's test runner covers all of it
// (web/tests/unit.test.mjs).

/** How each ticket status reads on "My tickets" (GET /api/tickets). */
const STATUS_TEXT = {
  valid: 'Valid',
  listed: 'Listed for resale',
  used: 'Used',
  transferred: 'Transferred',
  resold: 'Sold on resale',
};

export function ticketStatusText(status) {
  return STATUS_TEXT[status] || String(status);
}

/** Only a `valid` ticket has a code to show and can be sent to someone else. */
export function hasCode(ticket) {
  return ticket && ticket.status === 'valid';
}

/** A ticket code is a compact JWT: three base64url parts. */
const CODE_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The code in what a gate pasted or scanned: trimmed, inner whitespace
 * (a code wrapped over lines) removed. Null when it cannot be a code, so the
 * gate says so without asking the server.
 */
export function parseCode(text) {
  const code = String(text || '').replace(/\s+/g, '');
  return CODE_RE.test(code) ? code : null;
}

/**
 * What a check-in answer means at the gate. `answer` is the 200 body
 * (`{ticket, seat, status:"used"}`) or the error thrown for it (an ApiError:
 * status, code, detail, body). Returns `{kind, title, detail}` with kind one
 * of admitted, already_used, superseded, not_valid, invalid, error.
 */
export function checkInOutcome(answer, { formatTime = (t) => t } = {}) {
  if (answer && answer.status === 'used' && answer.ticket) {
    return { kind: 'admitted', title: 'Admitted', detail: answer.seat ? placeText(answer.seat) : 'General admission' };
  }
  const err = answer || {};
  const body = err.body || {};
  switch (err.code) {
    case 'already_used':
      return {
        kind: 'already_used',
        title: body.used_at ? `Already used at ${formatTime(body.used_at)}` : 'Already used',
        detail: err.detail || 'this ticket has already been checked in',
      };
    case 'superseded':
      return { kind: 'superseded', title: 'Superseded', detail: err.detail || 'this code is void: the ticket has changed hands' };
    case 'not_valid':
      return { kind: 'not_valid', title: 'Not valid', detail: err.detail || 'this ticket cannot be checked in' };
    case 'invalid_code':
      return { kind: 'invalid', title: 'Invalid code', detail: err.detail || 'this code is not a ticket for this event' };
    default:
      return { kind: 'error', title: 'Check-in failed', detail: err.detail || err.message || 'the check-in could not be made' };
  }
}

/** "Section 3 · Row 1, seat 2" from a seat id "3:1:2"; GA tickets have no seat. */
export function placeText(seat) {
  const m = /^(\d+):(\d+):(\d+)$/.exec(String(seat || ''));
  return m ? `Section ${m[1]} · Row ${m[2]}, seat ${m[3]}` : seat ? String(seat) : 'General admission';
}

/**
 * What the sender of a transfer is told when it fails (the ApiError of
 * POST /api/tickets/{id}/transfer): the problem's own detail, after a
 * sentence for the cases the API names.
 */
export function transferErrorText(err) {
  const detail = err && (err.detail || err.message) ? err.detail || err.message : 'the transfer failed';
  const lead = {
    no_such_user: 'No account uses that e-mail address.',
    transfer_closed: 'Transfers are closed: the event has started.',
  }[err && err.code];
  if (lead) return `${lead} (${detail})`;
  if (err && err.status === 409) return `This ticket cannot be transferred now: ${detail}`;
  return detail;
}

/** A plausible e-mail address (the server decides; this only stops typos early). */
export function looksLikeEmail(s) {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(String(s || '').trim());
}

// ---------------------------------------------------------------------------
// the QR code SVG
// ---------------------------------------------------------------------------

/** Elements a QR code needs; anything else (script, foreignObject, use, a, image…) goes. */
const SVG_ELEMENTS = new Set(['svg', 'g', 'rect', 'path', 'title', 'desc']);
/** Presentation attributes a QR code needs; no event handlers, no href, no style. */
const SVG_ATTRIBUTES = new Set([
  'xmlns', 'version', 'width', 'height', 'viewbox', 'x', 'y', 'd', 'fill', 'stroke', 'stroke-width',
  'shape-rendering', 'transform', 'preserveaspectratio', 'fill-rule', 'fill-opacity',
]);

/**
 * Strips an SVG element tree down to drawing: unknown elements are removed
 * with their content, unknown attributes dropped. Works on anything shaped
 * like a DOM element (localName, attributes, children, removeAttribute,
 * remove), so it is tested without a browser. Returns the root, or null when
 * the root is not an <svg>.
 */
export function sanitizeSvg(root) {
  if (!root || String(root.localName).toLowerCase() !== 'svg') return null;
  clean(root);
  return root;
}

function clean(el) {
  for (const attr of Array.from(el.attributes || [])) {
    if (!SVG_ATTRIBUTES.has(String(attr.name).toLowerCase())) el.removeAttribute(attr.name);
  }
  for (const child of Array.from(el.children || [])) {
    if (SVG_ELEMENTS.has(String(child.localName).toLowerCase())) clean(child);
    else child.remove();
  }
}
