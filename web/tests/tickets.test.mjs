// Unit tests of web/js/tickets.js (My tickets and the gate, DOM-free):
// `node --test web/tests/`.
import test from 'node:test';
import assert from 'node:assert/strict';

import { ApiError } from '../js/api.js';
import {
  ticketStatusText, hasCode, parseCode, checkInOutcome, placeText, transferErrorText, looksLikeEmail, sanitizeSvg,
} from '../js/tickets.js';

const CODE = 'eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJ0aWQiOiI3LWFiYy0xIn0.c2lnbmF0dXJlX2J5dGVz';

function problem(status, body) {
  return new ApiError({ status, code: body.code, detail: body.detail, title: body.title, body });
}

test('ticket statuses read as words; only a valid ticket has a code', () => {
  assert.equal(ticketStatusText('valid'), 'Valid');
  assert.equal(ticketStatusText('used'), 'Used');
  assert.equal(ticketStatusText('listed'), 'Listed for resale');
  assert.equal(ticketStatusText('transferred'), 'Transferred');
  assert.equal(ticketStatusText('resold'), 'Sold on resale');
  assert.equal(ticketStatusText('something_new'), 'something_new');
  assert.equal(hasCode({ status: 'valid' }), true);
  for (const status of ['used', 'listed', 'transferred', 'resold']) assert.equal(hasCode({ status }), false, status);
  assert.ok(!hasCode(null));
});

test('a pasted code is trimmed and unwrapped; anything else is not a code', () => {
  assert.equal(parseCode(`  ${CODE}\n`), CODE);
  assert.equal(parseCode(`${CODE.slice(0, 20)}\n  ${CODE.slice(20)}`), CODE, 'wrapped over lines');
  assert.equal(parseCode(''), null);
  assert.equal(parseCode(null), null);
  assert.equal(parseCode('hello'), null);
  assert.equal(parseCode('a.b'), null);
  assert.equal(parseCode('a.b.c.d'), null);
  assert.equal(parseCode('<script>.x.y'), null);
});

test('check-in: the first scan admits, with the seat', () => {
  const seated = checkInOutcome({ ticket: '7-abc-1', seat: '3:1:2', status: 'used' });
  assert.deepEqual(seated, { kind: 'admitted', title: 'Admitted', detail: 'Section 3 · Row 1, seat 2' });
  const ga = checkInOutcome({ ticket: '7-abc-2', seat: null, status: 'used' });
  assert.equal(ga.kind, 'admitted');
  assert.equal(ga.detail, 'General admission');
});

test('check-in: a second scan says when the ticket was used', () => {
  const err = problem(409, { code: 'already_used', detail: 'this ticket has already been checked in', used_at: '2030-01-01T19:30:05.123Z' });
  const out = checkInOutcome(err, { formatTime: (t) => `<${t}>` });
  assert.equal(out.kind, 'already_used');
  assert.equal(out.title, 'Already used at <2030-01-01T19:30:05.123Z>');
  assert.equal(out.detail, 'this ticket has already been checked in');
  assert.equal(checkInOutcome(problem(409, { code: 'already_used' })).title, 'Already used');
});

test('check-in: superseded, not valid, invalid and other failures', () => {
  assert.equal(checkInOutcome(problem(409, { code: 'superseded', detail: 'void' })).title, 'Superseded');
  assert.equal(checkInOutcome(problem(409, { code: 'not_valid', detail: 'this ticket is listed' })).kind, 'not_valid');
  const bad = checkInOutcome(problem(400, { code: 'invalid_code', detail: 'this code is not a ticket for this event (bad signature)' }));
  assert.deepEqual(bad, { kind: 'invalid', title: 'Invalid code', detail: 'this code is not a ticket for this event (bad signature)' });
  const forbidden = checkInOutcome(problem(403, { code: 'forbidden', detail: 'gate staff only' }));
  assert.equal(forbidden.kind, 'error');
  assert.equal(forbidden.detail, 'gate staff only');
  assert.equal(checkInOutcome(new ApiError({ status: 0, detail: 'network error: down' })).detail, 'network error: down');
});

test('places', () => {
  assert.equal(placeText('12:3:7'), 'Section 12 · Row 3, seat 7');
  assert.equal(placeText(null), 'General admission');
  assert.equal(placeText('odd'), 'odd');
});

test('transfer errors: the problem\'s detail, after a sentence for the named cases', () => {
  assert.equal(transferErrorText(problem(404, { code: 'no_such_user', detail: 'no user with that e-mail' })),
    'No account uses that e-mail address. (no user with that e-mail)');
  assert.match(transferErrorText(problem(403, { code: 'transfer_closed', detail: 'the event has started' })), /^Transfers are closed/);
  assert.equal(transferErrorText(problem(409, { code: 'conflict', detail: 'this ticket is used' })),
    'This ticket cannot be transferred now: this ticket is used');
  assert.equal(transferErrorText(problem(404, { code: 'not_found', detail: 'no such ticket' })), 'no such ticket');
  assert.equal(transferErrorText(undefined), 'the transfer failed');
});

test('e-mail addresses', () => {
  assert.ok(looksLikeEmail(' friend@example.com '));
  assert.ok(!looksLikeEmail('friend'));
  assert.ok(!looksLikeEmail('a b@c.d'));
  assert.ok(!looksLikeEmail(''));
});

/** Just enough of a DOM element for sanitizeSvg. */
function el(localName, attrs = {}, children = []) {
  const node = {
    localName,
    attributes: Object.entries(attrs).map(([name, value]) => ({ name, value })),
    children: [],
    parent: null,
    removeAttribute(name) {
      node.attributes = node.attributes.filter((a) => a.name !== name);
    },
    remove() {
      node.parent.children = node.parent.children.filter((c) => c !== node);
    },
  };
  for (const c of children) {
    c.parent = node;
    node.children.push(c);
  }
  return node;
}
const names = (node) => node.attributes.map((a) => a.name);

test('the QR code SVG keeps its drawing and loses everything that could act', () => {
  const svg = el('svg', { xmlns: 'http://www.w3.org/2000/svg', version: '1.1', width: '264', height: '264', viewBox: '0 0 264 264', onload: 'alert(1)' }, [
    el('rect', { x: '0', y: '0', width: '264', height: '264', fill: '#fff', style: 'x' }),
    el('path', { d: 'M8 8h8v8H8z', fill: '#000', 'shape-rendering': 'crispEdges' }),
    el('script', {}, []),
    el('foreignObject', {}, [el('iframe', { src: 'x' })]),
    el('a', { href: 'javascript:alert(1)' }, [el('rect', {})]),
    el('g', { transform: 'scale(2)' }, [el('use', { href: '#x' }), el('rect', { onclick: 'x', fill: '#000' })]),
  ]);
  assert.equal(sanitizeSvg(svg), svg);
  assert.deepEqual(names(svg), ['xmlns', 'version', 'width', 'height', 'viewBox']);
  assert.deepEqual(svg.children.map((c) => c.localName), ['rect', 'path', 'g']);
  assert.deepEqual(names(svg.children[0]), ['x', 'y', 'width', 'height', 'fill']);
  assert.deepEqual(names(svg.children[1]), ['d', 'fill', 'shape-rendering']);
  const g = svg.children[2];
  assert.deepEqual(g.children.map((c) => c.localName), ['rect']);
  assert.deepEqual(names(g.children[0]), ['fill']);
});

test('a document that is not an <svg> is refused', () => {
  assert.equal(sanitizeSvg(el('html')), null);
  assert.equal(sanitizeSvg(el('parsererror')), null);
  assert.equal(sanitizeSvg(null), null);
});
