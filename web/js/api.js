// The HTTP API (README "HTTP API"): JSON in and out, errors as ApiError with the server's
// code and message so forms can show them inline. The session is the HttpOnly cookie.

/** An error answer from the API, or a network failure (`code` = `network`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves with the parsed JSON body (null for 204). */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network', String(err?.message || err));
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) {
    const error = json?.error || {};
    const err = new ApiError(response.status, error.code || 'internal', error.message || response.statusText);
    // The body field a rule is about (forms show the error beside it), and how long a
    // rate limit lasts.
    err.field = error.field || null;
    err.retryAfter = Number(response.headers.get('Retry-After')) || null;
    throw err;
  }
  return json;
}

/** The themes catalogue: [{name, description, followers?}] (sorted as the server sends). */
export async function fetchThemes() {
  const body = await api('GET', '/api/themes');
  const list = Array.isArray(body) ? body : body?.themes || [];
  return list.map((th) => ({
    name: th.name,
    description: th.description || '',
    /** language → description (`en`, `pt-BR`); see describeTheme(). */
    descriptions: th.descriptions || {},
    followers: th.followers ?? th.follower_count ?? th.followers_count ?? null,
  }));
}

/** Every user of the directory (all pages, up to `max`). */
export async function fetchDirectory(max = 2000) {
  const users = [];
  const perPage = 100;
  for (let page = 1; users.length < max; page++) {
    const body = await api('GET', `/api/users?page=${page}&per_page=${perPage}`);
    const batch = Array.isArray(body) ? body : body?.users || [];
    users.push(...batch);
    const total = body?.total ?? users.length;
    if (batch.length === 0 || users.length >= total || Array.isArray(body)) break;
  }
  return users;
}

/** ICE servers for RTCPeerConnection; [] (host candidates only) when none are configured. */
export async function fetchIceServers() {
  try {
    const body = await api('GET', '/api/ice-servers');
    const list = Array.isArray(body) ? body : body?.ice_servers || body?.iceServers || [];
    return list.map((s) => ({
      urls: s.urls,
      ...(s.username ? { username: s.username } : {}),
      ...(s.credential ? { credential: s.credential } : {}),
    }));
  } catch {
    return [];
  }
}
