// Unit tests of web/js/account.js (the account pages, DOM-free) and of the
// API client's handling of a wrong current password: `node --test web/tests/`.
import test from 'node:test';
import assert from 'node:assert/strict';

import { createApi, ApiError } from '../js/api.js';
import {
  routeFromPath, cleanToken, tokenFrom, checkNewPassword, looksLikeEmail, isInvalidToken, isEmailUnverified,
  changePasswordErrorText, resetErrorText, forgotErrorText, verifyErrorText, tokenSaysVerified,
  INVALID_LINK, WRONG_PASSWORD, UNVERIFIED,
} from '../js/account.js';
import { buyErrorText } from '../js/resale.js';

const TOKEN = 'a3f1'.repeat(16); // 64 hex, as the e-mails carry

function problem(status, body) {
  return new ApiError({ status, code: body.code, detail: body.detail, title: body.title, body });
}

test('an e-mail link\'s path becomes its hash route, with only the token', () => {
  assert.equal(routeFromPath('/verify-email', `?token=${TOKEN}`), `#/verify-email?token=${TOKEN}`);
  assert.equal(routeFromPath('/reset-password', `?token=${TOKEN}&utm_source=mail`), `#/reset-password?token=${TOKEN}`);
  assert.equal(routeFromPath('/verify-email/', `?token=${TOKEN}`), `#/verify-email?token=${TOKEN}`, 'a trailing slash');
  assert.equal(routeFromPath('/verify-email', `?token=${TOKEN.toUpperCase()}`), `#/verify-email?token=${TOKEN}`, 'lower-cased');
  assert.equal(routeFromPath('/verify-email', ''), '#/verify-email', 'no token: the page says the link is invalid');
  assert.equal(routeFromPath('/reset-password', '?token=<script>'), '#/reset-password', 'a malformed token is dropped');
  assert.equal(routeFromPath('/', ''), null);
  assert.equal(routeFromPath('/index.html', `?token=${TOKEN}`), null);
  assert.equal(routeFromPath('/verify-emailx', `?token=${TOKEN}`), null);
  assert.equal(routeFromPath(undefined, undefined), null);
});

test('a token from a link or a pasted code: hex only, spaces and line breaks taken out', () => {
  assert.equal(cleanToken(`  ${TOKEN}\n`), TOKEN);
  assert.equal(cleanToken(`${TOKEN.slice(0, 30)}\r\n ${TOKEN.slice(30)}`), TOKEN, 'wrapped by a mail reader');
  assert.equal(cleanToken(''), null);
  assert.equal(cleanToken(null), null);
  assert.equal(cleanToken('abc'), null, 'too short');
  assert.equal(cleanToken(`${TOKEN}g`), null);
  assert.equal(cleanToken('x'.repeat(64)), null);
  assert.equal(tokenFrom(new URLSearchParams(`token=${TOKEN}`)), TOKEN);
  assert.equal(tokenFrom(new URLSearchParams('')), null);
  assert.equal(tokenFrom(null), null);
});

test('a new password: at least 8 characters, confirmed; the change form needs the current one', () => {
  assert.equal(checkNewPassword({ password: 'long enough', confirm: 'long enough' }), null);
  assert.match(checkNewPassword({ password: 'short', confirm: 'short' }), /at least 8 characters/);
  assert.match(checkNewPassword({ password: '', confirm: '' }), /at least 8 characters/);
  assert.equal(checkNewPassword({ password: 'ééééèèèè', confirm: 'ééééèèèè' }), null, 'characters, not bytes');
  assert.match(checkNewPassword({ password: '😀😀😀😀', confirm: '😀😀😀😀' }), /at least 8/, 'characters, not UTF-16 units');
  assert.match(checkNewPassword({ password: 'long enough', confirm: 'long enougH' }), /do not match/);
  assert.match(checkNewPassword({ current: '', password: 'long enough', confirm: 'long enough' }), /current password/);
  assert.equal(checkNewPassword({ current: 'old one!', password: 'long enough', confirm: 'long enough' }), null);
});

test('e-mail addresses, as far as the page can tell', () => {
  assert.ok(looksLikeEmail('fan@example.com'));
  assert.ok(looksLikeEmail('  fan@example.com '));
  for (const bad of ['', 'fan', 'fan@', '@example.com', 'fan@example', 'a b@example.com', null]) assert.ok(!looksLikeEmail(bad), String(bad));
});

test('account problems in words', () => {
  const invalid = problem(400, { code: 'invalid_token', detail: 'this link is unknown, already used or expired' });
  assert.ok(isInvalidToken(invalid));
  assert.ok(!isInvalidToken(problem(400, { code: 'invalid_password' })));
  assert.equal(verifyErrorText(invalid), `${INVALID_LINK}.`);
  assert.equal(verifyErrorText(invalid, { typed: true }), 'This code is invalid, used or expired.');
  assert.equal(resetErrorText(invalid), `${INVALID_LINK}.`);
  assert.match(resetErrorText(problem(400, { code: 'invalid_password', detail: 'password must be at least 8 characters' })), /cannot be used: password must be/);
  assert.equal(changePasswordErrorText(problem(401, { code: 'invalid_credentials', detail: 'the current password is wrong' })), `${WRONG_PASSWORD}.`);
  assert.equal(changePasswordErrorText(problem(503, { code: 'unavailable', detail: 'try again' })), 'try again');
  assert.equal(forgotErrorText(problem(400, { code: 'invalid_email', detail: 'not an e-mail address' })), 'Enter the e-mail address of your account.');
  assert.equal(forgotErrorText(new ApiError({ status: 0, detail: 'network error: down' })), 'network error: down');
});

test('a hold on an event that requires a verified address', () => {
  const err = problem(403, { code: 'email_unverified', detail: 'this event requires a verified e-mail address' });
  assert.ok(isEmailUnverified(err));
  assert.ok(!isEmailUnverified(problem(403, { code: 'forbidden' })));
  assert.ok(!isEmailUnverified(new Error('x')));
  assert.ok(!isEmailUnverified(null));
  assert.equal(UNVERIFIED, 'This event requires a verified e-mail address');
  assert.match(buyErrorText(err), /^This event requires a verified e-mail address: verify yours/);
});

test('the email_verified claim of an access token', () => {
  const jwt = (claims) => `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
  const atob = (s) => Buffer.from(s, 'base64').toString('latin1');
  assert.equal(tokenSaysVerified(jwt({ sub: '1', email_verified: true }), atob), true);
  assert.equal(tokenSaysVerified(jwt({ sub: '1', email_verified: false }), atob), false);
  assert.equal(tokenSaysVerified(jwt({ sub: '1' }), atob), false, 'an old token without the claim');
  assert.equal(tokenSaysVerified('not a token', atob), null);
  assert.equal(tokenSaysVerified('a.!!!.c', atob), null);
  assert.equal(tokenSaysVerified(null, atob), null);
});

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}
function response(status, body) {
  const text = body === undefined ? '' : JSON.stringify(body);
  return { status, ok: status >= 200 && status < 300, statusText: '', text: async () => text };
}

test('a wrong current password (401 invalid_credentials) is not taken for a stale token: no refresh', async () => {
  const calls = [];
  const api = createApi({
    storage: memoryStorage(),
    fetch: async (url, init) => {
      calls.push(url);
      if (url === '/api/auth/password') return response(401, { code: 'invalid_credentials', detail: 'the current password is wrong' });
      return response(500, {});
    },
  });
  api.session.set({ access_token: 'A1', refresh_token: 'R1', user: { id: '1' } });
  await assert.rejects(api.post('/api/auth/password', { current_password: 'x', new_password: 'yyyyyyyy' }),
    (e) => e instanceof ApiError && e.status === 401 && e.code === 'invalid_credentials');
  assert.deepEqual(calls, ['/api/auth/password']);
  assert.equal(api.session.get().refresh_token, 'R1', 'the session is kept');
});

test('a stale token on the password change is still refreshed once and retried', async () => {
  const calls = [];
  const api = createApi({
    storage: memoryStorage(),
    fetch: async (url, init) => {
      calls.push(url);
      if (url === '/api/auth/refresh') return response(200, { access_token: 'A2', refresh_token: 'R2', expires_in: 900 });
      if (url === '/api/auth/password') {
        return init.headers.authorization === 'Bearer A2' ? response(204) : response(401, { code: 'unauthorized', detail: 'expired' });
      }
      return response(500, {});
    },
  });
  api.session.set({ access_token: 'A1', refresh_token: 'R1', user: { id: '1' } });
  assert.equal(await api.post('/api/auth/password', { current_password: 'x', new_password: 'yyyyyyyy' }), null);
  assert.deepEqual(calls, ['/api/auth/password', '/api/auth/refresh', '/api/auth/password']);
  assert.deepEqual(api.session.get().user, { id: '1' }, 'the user is kept across the refresh');
});
