// The API client: JSON over fetch, bearer tokens kept in storage, one refresh
// on 401, problem+json errors as ApiError, and idempotent retries.
//
// Everything the browser provides (fetch, storage, timers) is passed in, so
// the same code runs under node's test runner with fakes.

const TOKENS_KEY = 'stampede.session';

/** An error answer (problem+json) or a network failure, with a human `detail`. */
export class ApiError extends Error {
  constructor({ status = 0, code = 'network', detail, title, body = null }) {
    super(detail || title || `request failed (${status})`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = this.message;
    this.body = body;
  }

  /** True when the request may not have reached the server: safe to retry with the same key. */
  get transient() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504 ||
      (this.status === 409 && this.code === 'payment_in_progress');
  }
}

/** A fresh idempotency key: 1-128 of [A-Za-z0-9_-], as the services require. */
export function newIdempotencyKey(cryptoImpl = globalThis.crypto) {
  if (cryptoImpl && typeof cryptoImpl.randomUUID === 'function') return cryptoImpl.randomUUID();
  const bytes = new Uint8Array(16);
  cryptoImpl.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readBody(resp) {
  if (resp.status === 204 || resp.status === 304) return null;
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 200) };
  }
}

function problemFrom(resp, body) {
  const b = body && typeof body === 'object' ? body : {};
  return new ApiError({
    status: resp.status,
    code: b.code || `http_${resp.status}`,
    detail: b.detail || b.title || `${resp.status} ${resp.statusText || 'error'}`,
    title: b.title,
    body: b,
  });
}

export function createApi({ fetch: fetchImpl, storage, sleep = (ms) => new Promise((r) => setTimeout(r, ms)), onSignedOut = () => {} }) {
  let refreshing = null; // one refresh at a time: a spent refresh token revokes its family

  const session = {
    get() {
      try {
        const raw = storage.getItem(TOKENS_KEY);
        return raw ? JSON.parse(raw) : null;
      } catch {
        return null;
      }
    },
    set(s) {
      storage.setItem(TOKENS_KEY, JSON.stringify(s));
    },
    clear() {
      storage.removeItem(TOKENS_KEY);
    },
  };

  function remember(body) {
    const prior = session.get();
    session.set({
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      user: body.user || (prior && prior.user) || null,
    });
  }

  async function send(method, path, { body, headers = {}, auth = true } = {}) {
    const h = { accept: 'application/json', ...headers };
    if (body !== undefined) h['content-type'] = 'application/json';
    const s = auth ? session.get() : null;
    if (s && s.access_token) h.authorization = `Bearer ${s.access_token}`;
    let resp;
    try {
      resp = await fetchImpl(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError({ status: 0, code: 'network', detail: `network error: ${e && e.message ? e.message : 'the server could not be reached'}` });
    }
    return { resp, usedToken: Boolean(h.authorization) };
  }

  // Trades the refresh token for a new pair. Concurrent callers share one attempt.
  function refresh() {
    if (!refreshing) {
      refreshing = (async () => {
        const s = session.get();
        if (!s || !s.refresh_token) return false;
        const { resp } = await send('POST', '/api/auth/refresh', { body: { refresh_token: s.refresh_token }, auth: false });
        const body = await readBody(resp);
        if (!resp.ok) {
          session.clear();
          onSignedOut();
          return false;
        }
        remember(body);
        return true;
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  /**
   * One API call. A 401 with a token triggers one refresh and one retry,
   * unless it is `invalid_credentials`: a wrong password (changing it), not
   * a stale token.
   */
  async function request(method, path, opts = {}) {
    let { resp, usedToken } = await send(method, path, opts);
    let body = await readBody(resp);
    if (resp.status === 401 && usedToken && opts.auth !== false && !(body && body.code === 'invalid_credentials')) {
      if (await refresh()) {
        ({ resp } = await send(method, path, opts));
        body = await readBody(resp);
      }
    }
    if (!resp.ok) throw problemFrom(resp, body);
    return body;
  }

  /**
   * A non-idempotent call made safe to retry: one `Idempotency-Key` for this
   * attempt, reused when the network fails or the service says "retry".
   */
  async function idempotent(method, path, { body, key = newIdempotencyKey(), attempts = 4, headers = {} } = {}) {
    let last;
    for (let i = 0; i < attempts; i++) {
      try {
        return await request(method, path, { body, headers: { ...headers, 'idempotency-key': key } });
      } catch (e) {
        last = e;
        if (!(e instanceof ApiError) || !e.transient || i === attempts - 1) throw e;
        await sleep(300 * 2 ** i);
      }
    }
    throw last;
  }

  async function signIn(email, password) {
    const body = await request('POST', '/api/auth/signin', { body: { email, password }, auth: false });
    remember(body);
    return body.user;
  }

  async function signUp(email, password) {
    const body = await request('POST', '/api/auth/signup', { body: { email, password }, auth: false });
    remember(body);
    return body.user;
  }

  async function signOut() {
    const s = session.get();
    session.clear();
    if (s && s.refresh_token) {
      try {
        await request('POST', '/api/auth/signout', { body: { refresh_token: s.refresh_token }, auth: false });
      } catch {
        // Signed out locally either way.
      }
    }
  }

  return {
    session,
    request,
    idempotent,
    refresh,
    signIn,
    signUp,
    signOut,
    get: (path) => request('GET', path),
    post: (path, body, headers) => request('POST', path, { body, headers }),
    del: (path) => request('DELETE', path),
  };
}
