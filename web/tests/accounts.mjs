// The browser test of the account pages: verify an address from its e-mail,
// an event that requires a verified address, change a password, reset a
// forgotten one. Headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) through nginx, against a running stack whose account
// e-mails land in a directory (the SMTP sink of the test stacks, or the
// file sink: `<kind>-<16 hex>.eml` either way). Run by scripts/browser-test
// after purchase.mjs.
//
//   STAMPEDE_WEB_URL         the stack's nginx, e.g. http://127.0.0.1:18080 (required)
//   STAMPEDE_ADMIN_EMAIL     an admin account on that stack
//   STAMPEDE_ADMIN_PASSWORD
//   STAMPEDE_MAIL_DIR        where the stack's e-mails are written (default .run/mail)
//   STAMPEDE_ARTIFACTS       where screenshots go (default .run/artifacts)
//   STAMPEDE_CHROMIUM        the browser (default /usr/bin/chromium)
//
// Story: a new customer signs up; #/account shows Not verified; "Send
// verification e-mail" says Check your inbox and the mail arrives (verify-*.eml
// to that address); its link (/verify-email?token=…, a path) opens the verify
// page, which says the address is verified and refreshes the session (the new
// access token carries email_verified; GET /api/auth/me agrees); #/account
// shows Verified; the same link again is invalid. The admin creates an event
// that requires a verified address (API); the verified customer holds a place
// on it (with the refreshed token) and releases it. A second, unverified
// customer's hold gets "This event requires a verified e-mail address" with a
// link to #/account (the API says 403 email_unverified), and so is its Buy of
// a resale ticket of that event (listed by the first customer); on #/account
// a wrong code is refused and the e-mail's code verifies, and the hold then
// works. A third customer verifies by the API (as from another device): the
// page's token is stale, so its hold is refused, the page finds the address
// verified, refreshes the token and holds again, which works. The first
// customer changes the password: a mismatch and a short one are refused in the
// page, a wrong current password gets "Your current password is wrong" (no
// token refresh), the right one succeeds and the session goes on (its refresh
// token still works); signed out, the old password fails and the new one
// works. Reset: "Forgot your password?" on the sign-in page, the address →
// the generic message; an unknown address → the same message and no mail; the
// reset mail's link, opened while signed in, sets a new password, drops the
// stored session (its refresh token is revoked); the new password signs in,
// the old one fails; the same link again is invalid (said when it sends a
// password: the API cannot look at a reset token without spending it). Screenshots: account.png,
// verified.png, reset.png (failure-accounts.png when it fails).

import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ADMIN_EMAIL, ADMIN_PASSWORD, ARTIFACTS, BASE, apiCall, apiRaw, browserTest, run, step } from './harness.mjs';

const MAIL_DIR = path.resolve(process.env.STAMPEDE_MAIL_DIR || '.run/mail');
const MAIL_WAIT_MS = 10_000;
// nginx allows 5 auth requests a second (a burst of 10) per address, and the
// browser and this script share one: a pause before each run of sign-ins.
const AUTH_PAUSE_MS = 2_000;

// ---------------------------------------------------------------------------
// the mail directory
// ---------------------------------------------------------------------------

/** Quoted-printable, decoded defensively (soft line breaks, =3D and other escapes). */
function decodeQuotedPrintable(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

function splitHead(raw) {
  const at = raw.search(/\r?\n\r?\n/);
  const head = at < 0 ? raw : raw.slice(0, at);
  const body = at < 0 ? '' : raw.slice(at).replace(/^\r?\n\r?\n/, '');
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const m = /^([^:\s]+):\s*(.*)$/.exec(line);
    if (m) headers[m[1].toLowerCase()] = m[2];
  }
  return { headers, body };
}

function decodePart(headers, body) {
  const enc = (headers['content-transfer-encoding'] || '').toLowerCase();
  if (enc === 'quoted-printable') return decodeQuotedPrintable(body);
  if (enc === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
}

/** One .eml file: `{to, subject, text}`, the text part decoded (the whole body if not multipart). */
export function parseMail(raw) {
  const { headers, body } = splitHead(raw);
  const type = headers['content-type'] || '';
  const boundary = /boundary="?([^";]+)"?/i.exec(type);
  let text = null;
  if (boundary) {
    for (const part of body.split(`--${boundary[1]}`)) {
      const p = splitHead(part.replace(/^\r?\n/, ''));
      if (/^text\/plain/i.test(p.headers['content-type'] || '')) {
        text = decodePart(p.headers, p.body);
        break;
      }
    }
  }
  if (text === null) text = decodePart(headers, body);
  return { to: headers.to || '', subject: headers.subject || '', text };
}

function mailFiles(prefix) {
  if (!existsSync(MAIL_DIR)) return [];
  return readdirSync(MAIL_DIR).filter((f) => f.startsWith(prefix) && f.endsWith('.eml'));
}

function addressedTo(mail, address) {
  const to = mail.to.toLowerCase();
  const a = address.toLowerCase();
  return to === a || to.includes(`<${a}>`) || to.split(/[\s,]+/).includes(a);
}

/** The messages in the mail directory addressed to `address` (any kind), by file name. */
function mailsTo(address) {
  return mailFiles('').filter((f) => {
    try {
      return addressedTo(parseMail(readFileSync(path.join(MAIL_DIR, f), 'utf8')), address);
    } catch {
      return false;
    }
  });
}

/**
 * Waits (polling, at most MAIL_WAIT_MS) for a new `<prefix>*.eml` to
 * `address`, not among `seen`: `{file, subject, text, link, code}`, the link
 * being the one to the web client's `path` (e.g. /verify-email).
 */
async function waitForMail(prefix, address, linkPath, seen = new Set()) {
  const deadline = Date.now() + MAIL_WAIT_MS;
  for (;;) {
    for (const file of mailFiles(prefix)) {
      if (seen.has(file)) continue;
      let mail;
      try {
        mail = parseMail(readFileSync(path.join(MAIL_DIR, file), 'utf8'));
      } catch {
        continue; // being written: next round
      }
      if (!addressedTo(mail, address)) continue;
      const link = new RegExp(`https?://[^\\s<>"]+${linkPath}\\?token=[0-9A-Fa-f]+`).exec(mail.text);
      const code = /Or enter this code:\s*([0-9A-Fa-f]+)/.exec(mail.text);
      if (!link) continue; // not complete yet
      return { file, subject: mail.subject, text: mail.text, link: link[0], code: code ? code[1] : null };
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${prefix}*.eml to ${address} in ${MAIL_DIR} within ${MAIL_WAIT_MS / 1000} s (files: ${mailFiles('').join(', ') || 'none'})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** An e-mail's link, opened on this stack's nginx (STAMPEDE_PUBLIC_URL may name another origin). */
function onThisStack(link) {
  const u = new URL(link);
  if (`${u.protocol}//${u.host}` !== new URL(BASE).origin) {
    console.log(`      (the link's origin ${u.protocol}//${u.host} is not ${BASE}: opened there instead)`);
  }
  return `${BASE}${u.pathname}${u.search}`;
}

/** The claims of a JWT (not verified: the test only reads what the page holds). */
function claimsOf(jwt) {
  return JSON.parse(Buffer.from(String(jwt).split('.')[1], 'base64url').toString('utf8'));
}

/** Verify, a verified-only event, change and reset a password; the pass line names the customers and the event. */
async function accounts({ page, tid, signOut, trySignIn, signIn: signInAs, signUp: signUpAs }) {
  const requests = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) requests.push(`${r.method()} ${u.pathname}`);
  });
  const session = () => page.evaluate(() => JSON.parse(localStorage.getItem('stampede.session') || 'null'));

  /** Lets nginx's auth rate limit (5/s, burst 10) fill up again. */
  const authPause = () => page.waitForTimeout(AUTH_PAUSE_MS);

  async function signIn(who, password, route = '#/account') {
    await authPause();
    await signInAs(who, password, route);
  }

  /** Signs out (when signed in) and up as a new customer, after a pause for the rate limit. */
  async function signUp(who, password) {
    await authPause();
    await signUpAs(who, password);
  }

  /** Sign-in that must fail: the error banner, still on the sign-in page, signed out. */
  async function signInFails(who, password) {
    await authPause();
    await trySignIn(who, password, '#/account');
    await tid('error-banner').filter({ hasText: /\S/ }).waitFor();
    assert.match(new URL(page.url()).hash, /^#\/signin/);
    assert.equal(await tid('nav-signin').count(), 1, 'not signed in');
    assert.equal((await apiRaw('POST', '/api/auth/signin', { body: { email: who, password } })).status, 401);
  }

  /** The account page's verified state, as shown: true / false. */
  async function shownVerified() {
    await tid('account-verified').waitFor();
    return (await tid('account-verified').getAttribute('data-verified')) === 'true';
  }

  /** Holds one general-admission place on the event page; lands on #/hold. */
  async function holdPlace(eventId, sectionId) {
    await page.goto(`${BASE}/#/events/${eventId}`);
    await tid('verified-required').waitFor();
    await tid(`ga-quantity-${sectionId}`).fill('1');
    await tid(`ga-hold-${sectionId}`).click();
  }

  async function releaseHold() {
    await page.waitForURL(/#\/hold$/);
    await tid('hold-page').waitFor();
    assert.equal(await tid('hold-status').textContent(), 'held');
    await tid('release-button').click();
    await page.waitForURL(/#\/events\/\d+$/);
  }

  const first = { email: `acct-${run}@example.com`, password: 'first password 1' };
  const second = { email: `acct2-${run}@example.com`, password: 'second password 2' };

  // ---- verify an address from its e-mail ------------------------------------
  step(`a new customer signs up (${first.email}); the nav has Account`);
  await signUpAs(first.email, first.password);

  step('#/account: the address, role Customer, Not verified');
  await tid('nav-account').click();
  await page.waitForURL(/#\/account$/);
  assert.equal(await tid('account-email').textContent(), first.email);
  assert.equal(await tid('account-role').getAttribute('data-role'), 'customer');
  assert.equal(await shownVerified(), false);
  assert.equal(await tid('account-verified').textContent(), 'Not verified');
  await tid('verify-box').waitFor();

  step('Send verification e-mail: "Check your inbox"; the mail arrives');
  const seenVerify = new Set(mailFiles('verify-'));
  await tid('verify-send').click();
  await tid('verify-sent').filter({ hasText: 'Check your inbox' }).waitFor();
  await page.locator('main').screenshot({ path: path.join(ARTIFACTS, 'account.png') });
  const verifyMail = await waitForMail('verify-', first.email, '/verify-email', seenVerify);
  assert.equal(verifyMail.subject, 'Verify your e-mail address');
  assert.match(verifyMail.link, /\/verify-email\?token=[0-9a-f]{64}$/);
  assert.ok(verifyMail.link.endsWith(`token=${verifyMail.code}`), 'the code is the link\'s token');
  assert.ok(verifyMail.file.startsWith(`verify-${verifyMail.code.slice(0, 16)}`), verifyMail.file);

  step(`open the e-mail's link (${verifyMail.link.replace(/token=.*/, 'token=…')}): "Your e-mail address is verified"`);
  await page.goto(onThisStack(verifyMail.link));
  await tid('verify-done').filter({ hasText: 'Your e-mail address is verified' }).waitFor();
  const landed = new URL(page.url());
  assert.equal(landed.pathname, '/', 'the path link became a hash route at /');
  assert.equal(landed.hash, `#/verify-email?token=${verifyMail.code}`);
  assert.equal(await tid('verify-done').getAttribute('data-refreshed'), 'true', 'the session was refreshed');
  await page.locator('main').screenshot({ path: path.join(ARTIFACTS, 'verified.png') });

  step('the page\'s new access token carries email_verified; GET /api/auth/me with it says verified');
  const afterVerify = await session();
  assert.equal(claimsOf(afterVerify.access_token).email_verified, true, 'a refreshed token');
  const me = await apiCall('GET', '/api/auth/me', { token: afterVerify.access_token });
  assert.equal(me.email, first.email);
  assert.equal(me.email_verified, true);

  step('#/account shows Verified, with no verification box');
  await tid('verify-to-account').click();
  await page.waitForURL(/#\/account$/);
  assert.equal(await shownVerified(), true);
  assert.equal(await tid('account-verified').textContent(), 'Verified');
  assert.equal(await tid('verify-box').isVisible(), false);

  step('the same link again: "This link is invalid, used or expired", with the way to a new one');
  await page.goto(onThisStack(verifyMail.link));
  await tid('verify-invalid').filter({ hasText: 'This link is invalid, used or expired' }).waitFor();
  assert.equal(await tid('verify-again').getAttribute('href'), '#/account');
  const usedAgain = await apiRaw('POST', '/api/auth/verify-email', { body: { token: verifyMail.code } });
  assert.equal(usedAgain.status, 400);
  assert.equal(usedAgain.body.code, 'invalid_token');

  // ---- an event that requires a verified address ------------------------------
  step('the admin creates and publishes an event with verified_email_required (API)');
  const admin = await apiCall('POST', '/api/auth/signin', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
  const now = Date.now();
  const draft = await apiCall('POST', '/api/events', {
    token: admin.access_token,
    body: {
      name: `Verified fans only ${run}`,
      venue: 'Hall V',
      starts_at: new Date(now + 30 * 86_400_000).toISOString(),
      sale_starts_at: new Date(now - 60_000).toISOString(),
      hold_seconds: 300,
      per_user_limit: 4,
      verified_email_required: true,
      sections: [{ name: 'Floor', price_cents: 2500, capacity: 50, general_admission: true }],
    },
  });
  const event = await apiCall('POST', `/api/events/${draft.id}/publish`, { token: admin.access_token });
  assert.equal(event.status, 'published');
  assert.equal(event.verified_email_required, true);
  const floor = event.sections[0].id;

  step('the verified customer (the refreshed session, not signed in again) holds a place; it is released');
  await holdPlace(event.id, floor);
  await releaseHold();

  step('the verified customer buys a place and lists it on resale (API), for the resale Buy below');
  const firstToken = (await session()).access_token;
  const bought = await apiCall('POST', `/api/events/${event.id}/holds`, { token: firstToken, body: { section_id: String(floor), quantity: 1 } });
  await apiCall('POST', `/api/holds/${bought.id}/payment`, {
    token: firstToken, body: { payment_method: 'pm_card_visa' }, headers: { 'idempotency-key': `acct-${run}` },
  });
  let ticket = null;
  for (let i = 0; !ticket; i++) {
    ticket = (await apiCall('GET', '/api/tickets', { token: firstToken })).tickets.find((t) => String(t.event_id) === String(event.id));
    assert.ok(ticket || i < 40, 'the bought ticket shows in GET /api/tickets');
    if (!ticket) await new Promise((r) => setTimeout(r, 250));
  }
  const listing = await apiCall('POST', `/api/tickets/${ticket.id}/listing`, { token: firstToken, body: { price_cents: 2000 } });

  step(`a second customer signs up (${second.email}), unverified; the hold is refused with the way to verify`);
  await signUp(second.email, second.password);
  await holdPlace(event.id, floor);
  const notice = tid('email-unverified');
  await notice.filter({ hasText: 'This event requires a verified e-mail address' }).waitFor();
  assert.equal(await tid('error-banner').locator('[data-testid="email-unverified"]').count(), 1, 'in the alert region');
  assert.equal(await tid('email-unverified-link').getAttribute('href'), '#/account');
  assert.match(new URL(page.url()).hash, new RegExp(`^#/events/${event.id}$`), 'no hold page');
  const secondToken = (await session()).access_token;
  const refused = await apiRaw('POST', `/api/events/${event.id}/holds`, { token: secondToken, body: { section_id: String(floor), quantity: 1 } });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.code, 'email_unverified');

  step('the resale ticket\'s Buy on that event is refused the same way');
  const offer = page.locator(`[data-testid="listing"][data-listing-id="${listing.id}"]`);
  await offer.getByTestId('listing-buy').click();
  await tid('listing-error').locator('[data-testid="email-unverified"]').filter({ hasText: 'This event requires a verified e-mail address' }).waitFor();
  assert.equal(await tid('listing-error').locator('[data-testid="email-unverified-link"]').getAttribute('href'), '#/account');
  assert.match(new URL(page.url()).hash, new RegExp(`^#/events/${event.id}$`), 'no hold page');
  const stillOpen = await apiCall('GET', `/api/events/${event.id}/listings`);
  assert.ok(stillOpen.listings.some((l) => String(l.id) === String(listing.id)), 'the listing is still open');

  step('the notice\'s link opens #/account: Not verified; a wrong code is refused');
  await tid('email-unverified-link').click();
  await page.waitForURL(/#\/account$/);
  assert.equal(await shownVerified(), false);
  await tid('verify-code').fill('0123456789abcdef'.repeat(4));
  await tid('verify-code-submit').click();
  await tid('verify-code-error').filter({ hasText: 'This code is invalid, used or expired' }).waitFor();
  assert.equal(await shownVerified(), false);

  step('send the e-mail; its code, pasted under "Or enter this code", verifies');
  const seenVerify2 = new Set(mailFiles('verify-'));
  await tid('verify-send').click();
  await tid('verify-sent').filter({ hasText: 'Check your inbox' }).waitFor();
  const verifyMail2 = await waitForMail('verify-', second.email, '/verify-email', seenVerify2);
  await tid('verify-code').fill(`  ${verifyMail2.code}\n`);
  await tid('verify-code-submit').click();
  await page.locator('[data-testid="account-verified"][data-verified="true"]').waitFor();
  assert.equal(claimsOf((await session()).access_token).email_verified, true, 'a refreshed token');

  step('now the second customer\'s hold works; released');
  await holdPlace(event.id, floor);
  await releaseHold();

  const third = { email: `acct3-${run}@example.com`, password: 'third customer password' };
  step(`a third customer (${third.email}) verifies elsewhere (API, as from a phone): this page's token is stale, yet the hold works`);
  await signUp(third.email, third.password);
  const stale = (await session()).access_token;
  const seenVerify3 = new Set(mailFiles('verify-'));
  await apiCall('POST', '/api/auth/verify-email/request', { token: stale });
  const verifyMail3 = await waitForMail('verify-', third.email, '/verify-email', seenVerify3);
  await apiCall('POST', '/api/auth/verify-email', { body: { token: verifyMail3.code } });
  assert.notEqual(claimsOf((await session()).access_token).email_verified, true, 'the page still has the old token');
  await holdPlace(event.id, floor);
  await releaseHold();
  assert.equal(claimsOf((await session()).access_token).email_verified, true, 'the page refreshed its token and held again');

  // ---- change the password ----------------------------------------------------
  const newPassword = 'second password of the first';
  step('the first customer signs in again; a mismatched and a short new password are refused in the page');
  await signIn(first.email, first.password, '#/account');
  await tid('password-form').waitFor();
  const before = requests.length;
  await tid('password-current').fill(first.password);
  await tid('password-new').fill(newPassword);
  await tid('password-confirm').fill(`${newPassword}!`);
  await tid('password-submit').click();
  await tid('password-error').filter({ hasText: 'do not match' }).waitFor();
  await tid('password-new').fill('short');
  await tid('password-confirm').fill('short');
  await tid('password-submit').click();
  await tid('password-error').filter({ hasText: 'at least 8 characters' }).waitFor();
  assert.deepEqual(requests.slice(before), [], 'nothing was sent');

  step('a wrong current password: "Your current password is wrong", still signed in, no token refresh');
  const sessionBefore = await session();
  await tid('password-current').fill('not my password');
  await tid('password-new').fill(newPassword);
  await tid('password-confirm').fill(newPassword);
  await tid('password-submit').click();
  await tid('password-error').filter({ hasText: 'Your current password is wrong' }).waitFor();
  assert.deepEqual(requests.slice(before), ['POST /api/auth/password']);
  assert.equal((await session()).refresh_token, sessionBefore.refresh_token);
  await tid('whoami').filter({ hasText: first.email }).waitFor();

  step('the right one: "Your password is changed"; the session goes on (its refresh token still works)');
  await tid('password-current').fill(first.password);
  await tid('password-submit').click();
  await tid('password-changed').filter({ hasText: 'Your password is changed' }).waitFor();
  assert.equal(await tid('password-error').textContent(), '');
  assert.equal(await tid('password-current').inputValue(), '', 'the fields are emptied');
  const refreshed = await page.evaluate(async () => {
    const s = JSON.parse(localStorage.getItem('stampede.session'));
    const r = await fetch('/api/auth/refresh', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: s.refresh_token }) });
    if (r.ok) {
      const b = await r.json();
      localStorage.setItem('stampede.session', JSON.stringify({ ...s, access_token: b.access_token, refresh_token: b.refresh_token }));
    }
    return r.status;
  });
  assert.equal(refreshed, 200, 'this sign-in survives the change');
  await page.reload();
  assert.equal(await tid('account-email').textContent(), first.email);

  step('signed out, the old password fails; the new one signs in');
  await signInFails(first.email, first.password);
  await signIn(first.email, newPassword);

  // ---- reset a forgotten password ---------------------------------------------
  const unknown = `nobody-${run}@example.com`;
  step('signed out, "Forgot your password?" on the sign-in page; the address → the generic message');
  await authPause();
  await signOut();
  await page.goto(`${BASE}/#/signin`);
  await tid('to-forgot').click();
  await page.waitForURL(/#\/forgot$/);
  const seenReset = new Set(mailFiles('reset-'));
  await tid('forgot-email').fill(first.email);
  await tid('forgot-submit').click();
  await page.locator('[data-testid="forgot-submit"]:not([disabled])').waitFor();
  await tid('forgot-sent').filter({ hasText: 'If an account exists for that address, we sent a link' }).waitFor();

  step(`an unknown address (${unknown}): the same message`);
  await authPause();
  await tid('forgot-email').fill(unknown);
  await tid('forgot-submit').click();
  await page.locator('[data-testid="forgot-submit"]:not([disabled])').waitFor();
  await tid('forgot-sent').filter({ hasText: 'If an account exists for that address, we sent a link' }).waitFor();
  assert.equal(await tid('forgot-error').textContent(), '');

  step('the reset mail arrives for the account; none for the unknown address');
  const resetMail = await waitForMail('reset-', first.email, '/reset-password', seenReset);
  assert.equal(resetMail.subject, 'Reset your password');
  await page.waitForTimeout(1_000);
  assert.deepEqual(mailsTo(unknown), [], 'no mail to an address without an account');

  step('signed in on this browser, open the reset link: a new password; the stored session is dropped');
  await signIn(first.email, newPassword);
  const dropped = await session();
  await page.goto(onThisStack(resetMail.link));
  assert.equal(new URL(page.url()).hash, `#/reset-password?token=${resetMail.code}`);
  const resetPassword = 'third password after reset';
  await tid('reset-new').fill(resetPassword);
  await tid('reset-confirm').fill('something else entirely');
  await tid('reset-submit').click();
  await tid('reset-error').filter({ hasText: 'do not match' }).waitFor();
  await tid('reset-confirm').fill(resetPassword);
  await tid('reset-submit').click();
  await tid('reset-done').filter({ hasText: 'Password changed, sign in' }).waitFor();
  await page.locator('main').screenshot({ path: path.join(ARTIFACTS, 'reset.png') });
  await tid('nav-signin').waitFor();
  assert.equal(await session(), null, 'the stored session is gone');
  const revoked = await apiRaw('POST', '/api/auth/refresh', { body: { refresh_token: dropped.refresh_token } });
  assert.equal(revoked.status, 401, 'the server revoked its refresh token');

  step('the new password signs in (from the page\'s link); the old one fails');
  await authPause();
  await tid('reset-to-signin').click();
  await page.waitForURL(/#\/signin$/);
  await tid('signin-email').fill(first.email);
  await tid('signin-password').fill(resetPassword);
  await tid('signin-submit').click();
  await tid('whoami').filter({ hasText: first.email }).waitFor();
  await signInFails(first.email, newPassword);

  step('the same reset link again, a new password sent: "This link is invalid, used or expired", with a link to ask again');
  // The API has no way to look at a reset token without spending it: the
  // page learns that the link is spent when it sends the new password.
  await authPause();
  await page.goto(onThisStack(resetMail.link));
  await tid('reset-new').fill('fourth password never set');
  await tid('reset-confirm').fill('fourth password never set');
  await tid('reset-submit').click();
  await tid('reset-invalid').filter({ hasText: 'This link is invalid, used or expired' }).waitFor();
  await tid('reset-again').click();
  await page.waitForURL(/#\/forgot$/);
  await tid('forgot-form').waitFor();
  assert.equal((await apiRaw('POST', '/api/auth/signin', { body: { email: first.email, password: 'fourth password never set' } })).status, 401,
    'the spent link changed nothing');

  return `${first.email}, ${second.email}, event ${event.id}`;
}

mkdirSync(MAIL_DIR, { recursive: true });
await browserTest({ name: 'account browser test', failureShot: 'failure-accounts.png' }, accounts);
