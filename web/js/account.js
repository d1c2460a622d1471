// The account pages, the DOM-free part: which hash route an e-mail's link
// (`/verify-email?token=…`, `/reset-password?token=…`) opens, the checks of
// a new password, and what each account problem+json tells the user.
//
// No browser globals here, so node's test runner covers all of it
// (web/tests/account.test.mjs). The pages are in accountpages.js.

export const MIN_PASSWORD = 8;

/** The paths of the links in account e-mails, and the hash route each opens. */
const LINK_ROUTES = {
  '/verify-email': '#/verify-email',
  '/reset-password': '#/reset-password',
};

/**
 * The hash route for a page loaded at an e-mail's link: `('/verify-email',
 * '?token=ab12')` → `'#/verify-email?token=ab12'`. Only the token is kept.
 * Null for any other path (the app starts on its hash as usual).
 */
export function routeFromPath(pathname, search = '') {
  const path = String(pathname || '').replace(/\/+$/, '');
  const route = LINK_ROUTES[path];
  if (!route) return null;
  const token = tokenFrom(new URLSearchParams(search || ''));
  return token ? `${route}?token=${encodeURIComponent(token)}` : route;
}

/**
 * The token of a link or a pasted code: trimmed, with the spaces and line
 * breaks a mail reader or a copy may add taken out. Null when there is none
 * or it cannot be a token (tokens are hex; anything else is sent nowhere).
 */
export function cleanToken(text) {
  const t = String(text ?? '').replace(/\s+/g, '');
  return /^[0-9A-Fa-f]{16,256}$/.test(t) ? t.toLowerCase() : null;
}

/** The token of a route's parameters (URLSearchParams), cleaned; null when missing or malformed. */
export function tokenFrom(params) {
  return params && typeof params.get === 'function' ? cleanToken(params.get('token')) : null;
}

/**
 * A new password and its confirmation, checked as the server will (at least
 * 8 characters) and against each other: an error sentence, or null when
 * they will do. `current` (the change form) must be given when not undefined.
 */
export function checkNewPassword({ current, password, confirm }) {
  if (current !== undefined && !current) return 'Enter your current password.';
  const pw = String(password ?? '');
  if ([...pw].length < MIN_PASSWORD) return `The new password needs at least ${MIN_PASSWORD} characters.`;
  if (pw !== String(confirm ?? '')) return 'The new password and its confirmation do not match.';
  return null;
}

/** A plausible e-mail address (the server has the last word). */
export function looksLikeEmail(text) {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(String(text ?? '').trim());
}

function detailOf(err, fallback) {
  return err && (err.detail || err.message) ? err.detail || err.message : fallback;
}

export const INVALID_LINK = 'This link is invalid, used or expired';
export const WRONG_PASSWORD = 'Your current password is wrong';
export const RESET_SENT = 'If an account exists for that address, we sent a link';
export const UNVERIFIED = 'This event requires a verified e-mail address';

/** True for the 400 `invalid_token` of verify-email and password-reset. */
export function isInvalidToken(err) {
  return Boolean(err && err.status === 400 && err.code === 'invalid_token');
}

/** True for the 403 `email_unverified` of a hold on an event that requires a verified address. */
export function isEmailUnverified(err) {
  return Boolean(err && err.status === 403 && err.code === 'email_unverified');
}

/** The message when POST /api/auth/password (change) fails. */
export function changePasswordErrorText(err) {
  if (err && err.status === 401 && err.code === 'invalid_credentials') return `${WRONG_PASSWORD}.`;
  if (err && err.code === 'invalid_password') return `The new password cannot be used: ${detailOf(err, 'too short')}.`;
  return detailOf(err, 'the password could not be changed');
}

/** The message when POST /api/auth/password-reset (a new password from a link) fails. */
export function resetErrorText(err) {
  if (isInvalidToken(err)) return `${INVALID_LINK}.`;
  if (err && err.code === 'invalid_password') return `The new password cannot be used: ${detailOf(err, 'too short')}.`;
  return detailOf(err, 'the password could not be reset');
}

/** The message when POST /api/auth/password-reset/request fails (202 is the only success). */
export function forgotErrorText(err) {
  if (err && err.code === 'invalid_email') return 'Enter the e-mail address of your account.';
  return detailOf(err, 'the link could not be sent');
}

/** The message when POST /api/auth/verify-email fails; `typed` when the user pasted the code. */
export function verifyErrorText(err, { typed = false } = {}) {
  if (isInvalidToken(err)) return typed ? 'This code is invalid, used or expired.' : `${INVALID_LINK}.`;
  return detailOf(err, 'the address could not be verified');
}

/**
 * The `email_verified` claim of an access token (a JWT), as the services
 * read it; null when the token cannot be read. Only for deciding whether a
 * refresh is due: the services check the signature, not this.
 */
export function tokenSaysVerified(accessToken, decodeBase64 = globalThis.atob) {
  const part = String(accessToken || '').split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const claims = JSON.parse(decodeBase64(b64));
    return claims && typeof claims === 'object' ? claims.email_verified === true : null;
  } catch {
    return null;
  }
}
