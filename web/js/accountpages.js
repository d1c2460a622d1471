// The account pages: #/account (the address, its role, whether it is
// verified; send a verification e-mail or enter its code; change the
// password), #/verify-email?token= (an e-mail's verify link), #/forgot (ask
// for a reset link) and #/reset-password?token= (choose a new password from
// that link), and the notice a hold gets on an event that requires a verified
// address. The links in the e-mails are paths (/verify-email?token=…):
// app.js turns them into these hash routes on load (routeFromPath). The app
// shell (page, api, busy, …) is passed in by app.js; the decisions live in
// account.js, which is unit-tested.

import { ApiError } from './api.js';
import { h, fill, field } from './dom.js';
import {
  cleanToken, tokenFrom, checkNewPassword, looksLikeEmail, tokenSaysVerified, isInvalidToken,
  changePasswordErrorText, resetErrorText, forgotErrorText, verifyErrorText,
  MIN_PASSWORD, INVALID_LINK, RESET_SENT, UNVERIFIED,
} from './account.js';

const ROLE_TEXT = {
  customer: 'Customer',
  organiser: 'Organiser',
  gate: 'Gate staff',
  admin: 'Administrator',
};

export function accountPages(shell) {
  const {
    api, page, loading, busy, clearError, user, needSignIn, announce, renderAccount, signedOut,
  } = shell;

  /** An inline error region for a form (role=alert, empty until filled). */
  const errorBox = (testid) => h('div', { class: 'error', role: 'alert', 'aria-live': 'assertive', 'data-testid': testid });

  /**
   * The new password and its confirmation, as the change and reset forms ask
   * for them (test ids `<prefix>-new` and `<prefix>-confirm`): both inputs and
   * their labelled fields.
   */
  function newPasswordFields(prefix) {
    const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: MIN_PASSWORD, 'data-testid': `${prefix}-new` });
    const confirm = h('input', { type: 'password', autocomplete: 'new-password', required: true, 'data-testid': `${prefix}-confirm` });
    const fields = [field('New password', next, `At least ${MIN_PASSWORD} characters.`), field('Confirm the new password', confirm)];
    return { next, confirm, fields };
  }

  /** Runs fn when the form is submitted (instead of sending it), the page's error and err emptied first. */
  function onSubmit(form, err, fn) {
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError();
      fill(err);
      await fn();
    });
  }

  /** Marks the stored session's user verified (the nav and later pages read it). */
  function rememberVerified(userId) {
    const s = api.session.get();
    if (s && s.user && String(s.user.id) === String(userId)) {
      api.session.set({ ...s, user: { ...s.user, email_verified: true } });
    }
  }

  /**
   * After the address is verified: a new access token, so holds on events
   * that require a verified address pass (the claim is as of the token's
   * issue). Only for the signed-in user the verification was for.
   */
  async function refreshVerified(verifiedUser) {
    const u = user();
    if (!u || !verifiedUser || String(u.id) !== String(verifiedUser.id)) return false;
    const ok = await api.refresh();
    if (ok) rememberVerified(verifiedUser.id);
    renderAccount();
    return ok;
  }

  /**
   * When a hold says `email_unverified` but the address has been verified
   * since this access token was issued (in another tab, on a phone): a
   * refresh, and true, so the caller holds once more. False otherwise.
   */
  async function reverified() {
    const s = api.session.get();
    if (!s || !s.access_token || tokenSaysVerified(s.access_token) === true) return false;
    const me = await api.get('/api/auth/me').catch(() => null);
    if (!me || !me.email_verified) return false;
    return refreshVerified(me);
  }

  /** The words a hold gets on an event that requires a verified address, with the way to verify. */
  function unverifiedNotice() {
    return h('span', { 'data-testid': 'email-unverified' },
      h('strong', {}, `${UNVERIFIED}.`), ' ',
      h('a', { href: '#/account', 'data-testid': 'email-unverified-link' }, 'Verify yours on your account page'), '.');
  }

  // -------------------------------------------------------------------------
  // #/account
  // -------------------------------------------------------------------------

  async function accountPage(ctx) {
    if (!user()) {
      needSignIn('#/account');
      return;
    }
    page('Your account', loading());
    let me = await api.get('/api/auth/me');
    if (!ctx.live()) return;
    // Verified elsewhere since this token was issued: a fresh token now, so
    // holds that need a verified address work from this tab too.
    if (me.email_verified && tokenSaysVerified(api.session.get()?.access_token) === false) {
      await refreshVerified(me).catch(() => false);
      if (!ctx.live()) return;
    }
    if (me.email_verified) rememberVerified(me.id);

    const status = h('dd', { 'data-testid': 'account-verified' });
    const verifyBox = h('section', { class: 'section', 'data-testid': 'verify-box', 'aria-labelledby': 'verify-title' });
    function showStatus() {
      status.dataset.verified = String(Boolean(me.email_verified));
      fill(status, me.email_verified
        ? h('span', { class: 'badge confirmed' }, 'Verified')
        : h('span', { class: 'badge listed' }, 'Not verified'));
      verifyBox.hidden = Boolean(me.email_verified);
    }

    const facts = h('dl', { class: 'facts', 'data-testid': 'account-facts' },
      h('dt', {}, 'E-mail'), h('dd', { 'data-testid': 'account-email' }, me.email),
      h('dt', {}, 'Role'), h('dd', { 'data-testid': 'account-role', 'data-role': me.role }, ROLE_TEXT[me.role] || me.role),
      h('dt', {}, 'E-mail address'), status);

    // Verification: send the e-mail, or paste its code.
    const send = h('button', { type: 'button', class: 'primary', 'data-testid': 'verify-send' }, 'Send verification e-mail');
    const sent = h('p', { class: 'notice', role: 'status', 'data-testid': 'verify-sent', hidden: true });
    const sendError = errorBox('verify-send-error');
    send.addEventListener('click', async () => {
      clearError();
      fill(sendError);
      try {
        await busy(send, 'Sending…', () => api.post('/api/auth/verify-email/request'));
        fill(sent, h('strong', {}, 'Check your inbox.'), ` We sent a link to ${me.email}. It works once, for 24 hours.`);
        sent.hidden = false;
        announce('Check your inbox: we sent a verification link.');
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (e.status === 401) {
          needSignIn('#/account');
          return;
        }
        fill(sendError, e.detail);
      }
    });
    const code = h('input', {
      autocomplete: 'one-time-code', spellcheck: false, required: true, 'data-testid': 'verify-code',
    });
    const codeSubmit = h('button', { type: 'submit', class: 'secondary', 'data-testid': 'verify-code-submit' }, 'Verify');
    const codeError = errorBox('verify-code-error');
    const codeForm = h('form', { class: 'inline', 'data-testid': 'verify-code-form', 'aria-label': 'Verify with the code from the e-mail', novalidate: true },
      field('Or enter this code', code, 'The code in the verification e-mail, if the link does not open here.'), codeSubmit);
    onSubmit(codeForm, codeError, async () => {
      const token = cleanToken(code.value);
      if (!token) {
        fill(codeError, 'Paste the code from the e-mail: a long run of letters a–f and digits.');
        code.focus();
        return;
      }
      try {
        const verified = await busy(codeSubmit, 'Verifying…', () => api.post('/api/auth/verify-email', { token }));
        await refreshVerified(verified).catch(() => false);
        if (!ctx.live()) return;
        me = { ...me, email_verified: true };
        showStatus();
        announce('Your e-mail address is verified.');
      } catch (e2) {
        if (!(e2 instanceof ApiError)) throw e2;
        fill(codeError, verifyErrorText(e2, { typed: true }));
        code.focus();
      }
    });
    fill(verifyBox,
      h('h2', { id: 'verify-title' }, 'Verify your e-mail address'),
      h('p', { class: 'muted' }, 'Some events sell only to verified addresses. We send you a link; open it, or paste its code below.'),
      h('div', { class: 'actions' }, send), sent, sendError,
      codeForm, codeError);
    showStatus();

    page('Your account', facts, verifyBox, passwordSection());
  }

  /** Change password: current, new, confirm; the session goes on (the server keeps this sign-in). */
  function passwordSection() {
    const current = h('input', { type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'password-current' });
    const { next, confirm, fields } = newPasswordFields('password');
    const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'password-submit' }, 'Change password');
    const err = errorBox('password-error');
    const done = h('p', { class: 'notice ok', role: 'status', 'data-testid': 'password-changed', hidden: true });
    const form = h('form', { class: 'narrow', 'data-testid': 'password-form', 'aria-labelledby': 'password-title', novalidate: true },
      field('Current password', current),
      fields,
      h('div', { class: 'actions' }, submit), err);
    onSubmit(form, err, async () => {
      done.hidden = true;
      const problem = checkNewPassword({ current: current.value, password: next.value, confirm: confirm.value });
      if (problem) {
        fill(err, problem);
        (current.value ? next : current).focus();
        return;
      }
      try {
        await busy(submit, 'Changing…', () =>
          api.post('/api/auth/password', { current_password: current.value, new_password: next.value }));
        for (const input of [current, next, confirm]) input.value = '';
        fill(done, h('strong', {}, 'Your password is changed.'), ' You stay signed in here; other devices have to sign in again.');
        done.hidden = false;
        announce('Your password is changed.');
      } catch (e2) {
        if (!(e2 instanceof ApiError)) throw e2;
        if (e2.status === 401 && e2.code !== 'invalid_credentials') {
          needSignIn('#/account');
          return;
        }
        fill(err, changePasswordErrorText(e2));
        current.focus();
      }
    });
    return h('section', { class: 'section' },
      h('h2', { id: 'password-title' }, 'Change your password'), form, done);
  }

  // -------------------------------------------------------------------------
  // #/verify-email?token=…
  // -------------------------------------------------------------------------

  async function verifyEmailPage(ctx, params) {
    const token = tokenFrom(params);
    const again = () => (user()
      ? h('a', { href: '#/account', 'data-testid': 'verify-again' }, 'Send a new link from your account page')
      : h('a', { href: `#/signin?next=${encodeURIComponent('#/account')}`, 'data-testid': 'verify-again' }, 'Sign in to send a new link'));
    const invalid = () => page('Verify your e-mail address',
      h('div', { class: 'error', role: 'alert', 'data-testid': 'verify-invalid' }, h('strong', {}, `${INVALID_LINK}.`), ' ', again(), '.'));
    if (!token) {
      invalid();
      return;
    }
    page('Verify your e-mail address', h('p', { class: 'muted', 'aria-busy': 'true', 'data-testid': 'verify-busy' }, 'Verifying your address…'));
    let verified;
    try {
      verified = await api.post('/api/auth/verify-email', { token });
    } catch (e) {
      if (!ctx.live()) return;
      if (e instanceof ApiError && isInvalidToken(e)) {
        invalid();
        return;
      }
      if (e instanceof ApiError) {
        page('Verify your e-mail address',
          h('div', { class: 'error', role: 'alert', 'data-testid': 'verify-failed' }, verifyErrorText(e), ' Try the link again in a moment.'));
        return;
      }
      throw e;
    }
    // Signed in as that user: a new token carries the verification.
    const refreshed = await refreshVerified(verified).catch(() => false);
    if (!ctx.live()) return;
    announce('Your e-mail address is verified.');
    page('E-mail address verified',
      h('p', { class: 'notice ok', role: 'status', 'data-testid': 'verify-done', 'data-refreshed': String(refreshed) },
        h('strong', {}, 'Your e-mail address is verified'), ` (${verified.email}).`),
      h('p', {}, user()
        ? h('a', { href: '#/account', 'data-testid': 'verify-to-account' }, 'Back to your account')
        : h('a', { href: `#/signin?next=${encodeURIComponent('#/account')}`, 'data-testid': 'verify-to-signin' }, 'Sign in')));
  }

  // -------------------------------------------------------------------------
  // #/forgot and #/reset-password?token=…
  // -------------------------------------------------------------------------

  function forgotPage(ctx, params) {
    const email = h('input', {
      type: 'email', autocomplete: 'email', required: true, 'data-testid': 'forgot-email', value: params.get('email') || '',
    });
    const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'forgot-submit' }, 'Send me a link');
    const err = errorBox('forgot-error');
    const sent = h('p', { class: 'notice', role: 'status', 'data-testid': 'forgot-sent', hidden: true });
    const form = h('form', { class: 'narrow', 'data-testid': 'forgot-form', novalidate: true },
      field('Email', email, 'The address you sign in with.'), h('div', { class: 'actions' }, submit), err);
    onSubmit(form, err, async () => {
      sent.hidden = true;
      const address = email.value.trim();
      if (!looksLikeEmail(address)) {
        fill(err, 'Enter the e-mail address of your account.');
        email.focus();
        return;
      }
      try {
        await busy(submit, 'Sending…', () => api.request('POST', '/api/auth/password-reset/request', { body: { email: address }, auth: false }));
        if (!ctx.live()) return;
        // The same words whether or not the account exists: so does the server.
        fill(sent, h('strong', {}, `${RESET_SENT}.`), ' It works once, for an hour. Check your spam folder if it does not come.');
        sent.hidden = false;
        announce(`${RESET_SENT}.`);
      } catch (e2) {
        if (!(e2 instanceof ApiError)) throw e2;
        fill(err, forgotErrorText(e2));
        email.focus();
      }
    });
    page('Forgot your password?',
      h('p', { class: 'lead' }, 'Enter your address and we will e-mail you a link to choose a new password.'),
      form, sent,
      h('p', {}, h('a', { href: '#/signin', 'data-testid': 'forgot-to-signin' }, 'Back to sign in')));
    email.focus();
  }

  function resetPasswordPage(ctx, params) {
    const token = tokenFrom(params);
    const askAgain = () => h('a', { href: '#/forgot', 'data-testid': 'reset-again' }, 'Ask for a new link');
    const invalid = () => page('Choose a new password',
      h('div', { class: 'error', role: 'alert', 'data-testid': 'reset-invalid' }, h('strong', {}, `${INVALID_LINK}.`), ' ', askAgain(), '.'));
    if (!token) {
      invalid();
      return;
    }
    const { next, confirm, fields } = newPasswordFields('reset');
    const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'reset-submit' }, 'Set the new password');
    const err = errorBox('reset-error');
    const form = h('form', { class: 'narrow', 'data-testid': 'reset-form', novalidate: true },
      fields,
      h('div', { class: 'actions' }, submit), err);
    onSubmit(form, err, async () => {
      const problem = checkNewPassword({ password: next.value, confirm: confirm.value });
      if (problem) {
        fill(err, problem);
        next.focus();
        return;
      }
      try {
        await busy(submit, 'Saving…', () => api.request('POST', '/api/auth/password-reset', { body: { token, new_password: next.value }, auth: false }));
      } catch (e2) {
        if (!(e2 instanceof ApiError)) throw e2;
        if (!ctx.live()) return;
        if (isInvalidToken(e2)) {
          invalid();
          return;
        }
        fill(err, resetErrorText(e2));
        next.focus();
        return;
      }
      if (!ctx.live()) return;
      // The server revoked every sign-in of the account: a session kept
      // here (this user's, most likely) would only fail at its next refresh.
      if (user()) {
        api.session.clear();
        signedOut();
      }
      announce('Password changed. Sign in with the new one.');
      page('Password changed',
        h('p', { class: 'notice ok', role: 'status', 'data-testid': 'reset-done' },
          h('strong', {}, 'Password changed, sign in'), ' with your new password. Every device signed in to the account was signed out.'),
        h('p', {}, h('a', { href: '#/signin', class: 'button-link', 'data-testid': 'reset-to-signin' }, 'Sign in')));
    });
    page('Choose a new password', form);
    next.focus();
  }

  return {
    accountPage, verifyEmailPage, forgotPage, resetPasswordPage, unverifiedNotice, reverified,
  };
}
