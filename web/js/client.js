// Tertulia protocol client: one module that owns the WebSocket protocol v1 (docs/protocol.md).
//
// It connects, reconnects with backoff, resumes what it had (presence status, joined rooms
// with `since`, unsent chat messages), matches replies to requests by `id`, keeps the lobby's
// presence map and emits typed events. It has no DOM code, so other front ends (and Node 20,
// given a WebSocket constructor such as the `ws` package's) can use it on its own:
//
//   import { TertuliaClient } from './client.js';
//   const client = new TertuliaClient({ url: 'ws://127.0.0.1:8080/ws' });
//   client.on('presence', ({ users }) => render(users));
//   await client.connect();
//   const joined = await client.joinRoom('canal1');
//   client.sendChat('canal1', 'olá');       // pending until the server stores it
//
// Events (`client.on(type, fn)` returns an unsubscribe function):
//   state            {state: 'connecting'|'open'|'reconnecting'|'closed', attempt, delay?, code?}
//   welcome          the server's welcome frame (also after every reconnect)
//   presence         {users: Map<id, user>, changed: [ids]} after a snapshot, update or batch
//   calls.missed     {calls} missed while away
//   call.incoming, call.ringing, call.accepted, call.declined, call.cancelled, call.missed,
//   call.ended, call.left, call.answered_elsewhere     the server's frames, as they are
//   room.joined      the joined frame, `messages` already filtered to the ones not seen before;
//                    after a resume, `has_more: true` says more was missed than one frame holds:
//                    the client fetches the rest itself and hands it over as `chat.missed`
//   chat.missed      {room, messages, has_more, error?} the rest of what was missed while away,
//                    a page at a time, oldest first, each message once; live `chat.message`s of
//                    the room wait until it has all come (then those not seen follow, in order).
//                    `has_more: false` ends it; `error` (with `has_more: true`) means the rest
//                    could not be fetched
//   room.peer_joined, room.peer_left, signal, chat.typing   (`room.peer_left` has `dropped`:
//                    the peer's connection ended; in a call it may come back, see call.js)
//   room.lost        {room, error} a room could not be rejoined after a reconnect
//   chat.message     a message not seen before (duplicates after a resume are dropped)
//   chat.pending     {room, client_msg_id, text} a message waiting for the server
//   chat.delivered   {room, client_msg_id, msg_id, created_at} the server stored it
//   chat.failed      {room, client_msg_id, error} the server refused it (will not be resent)
//   conversation.read     {room, msg_id, unread} this user read a conversation (another tab's
//                    read, or the reply to markRead)
//   conversation.updated  {room, kind, members, by} a group conversation was made or grown
//   revoked          {code} the session was revoked (close 4001): no reconnect
//   transport        {transport: 'websocket'|'http'} the transport of the connection just
//                    opened (see `transport` below), on every welcome
//   frame            every frame received, for debugging and extensions

import { StreamSocket } from './stream-socket.js';

/** Close code the server uses when the session was revoked (logout, ban, kick). */
export const CLOSE_REVOKED = 4001;

/** How long before an unanswered (or rate-limited) chat message is sent again, in ms. */
const RESEND_AFTER_MS = 1000;

/** Messages asked for per page when catching up on what was missed (the server's most). */
const CATCH_UP_PAGE = 200;

/** Statuses a user may set themselves; `in_call` and `offline` are the server's. */
export const SETTABLE_STATUSES = ['online', 'busy', 'away'];

/** Error thrown (or passed to `chat.failed`) for an `error` frame or a lost connection. */
export class ProtocolError extends Error {
  constructor(code, message, frame) {
    super(message || code);
    this.name = 'ProtocolError';
    /** The protocol's error code (`conflict`, `forbidden`...), or `disconnected`/`timeout`. */
    this.code = code;
    this.frame = frame;
  }
}

/** A random id for a chat message, so a resend is recognised as the same message. */
export function newClientMsgId() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return 'm-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The direct room of two users: `dm:<low id>:<high id>`. */
export function directRoom(a, b) {
  const [low, high] = a < b ? [a, b] : [b, a];
  return `dm:${low}:${high}`;
}

/** The WebSocket URL of the server this page came from. */
export function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error('TertuliaClient needs a url outside a browser');
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}

/**
 * The protocol client. Options:
 * - `url`: the `/ws` URL (default: this page's server)
 * - `createSocket(url)`: makes the socket (default `new WebSocket(url)`); in Node pass e.g.
 *   `(url) => new WS(url, { headers: { Authorization: 'Bearer ' + token } })`
 * - `backoff`: `{minMs, maxMs, factor}` for reconnecting (default 500 ms doubling to 15 s)
 * - `requestTimeoutMs`: how long a request waits for its reply (default 15 s)
 * - `reconnect`: false to stay closed after a drop (default true)
 * - `transport`: 'auto' (default), 'websocket' or 'http'. 'auto' tries a WebSocket and falls
 *   back to the HTTP transport (Server-Sent Events + POST, `createStream(url)`, default a
 *   StreamSocket on `/api/stream`) when the upgrade fails or no frame comes within
 *   `fallbackAfterMs` (default 5 s); once the HTTP transport worked where the WebSocket did not,
 *   reconnections use it directly.
 */
export class TertuliaClient {
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.createSocket = options.createSocket || ((url) => new globalThis.WebSocket(url));
    this.backoff = { minMs: 500, maxMs: 15000, factor: 2, ...(options.backoff || {}) };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15000;
    this.autoReconnect = options.reconnect !== false;
    this.transport = options.transport || 'auto';
    this.createStream = options.createStream || ((url) => new StreamSocket(url));
    this.streamUrl = options.streamUrl;
    this.fallbackAfterMs = options.fallbackAfterMs ?? 5000;
    /** The transport of the current (or last) connection: 'websocket' or 'http'. */
    this.using = this.transport === 'http' ? 'http' : 'websocket';

    /** 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' */
    this.state = 'idle';
    /** The last `welcome` frame: `session_id`, `user`, `heartbeat_ms`, `limits`. */
    this.welcome = null;
    /** Everyone the server says is not offline, plus those seen going offline: id → user. */
    this.users = new Map();
    /**
     * Rooms we are in (and rejoin after a reconnect): name → {lastMsgId, seen: Set, joined,
     * catchUp}. `lastMsgId` is the newest message handed to the app, so a resume asks for
     * what came after it; `catchUp` is set while missed pages are being fetched
     * ({buffer: live chat.message frames held back meanwhile, done: a promise}).
     */
    this.rooms = new Map();
    /** Chat messages not yet stored by the server: client_msg_id → {room, text}. */
    this.outbox = new Map();

    this._listeners = new Map();
    this._pending = new Map();
    this._nextId = 1;
    this._ws = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._heartbeatTimer = null;
    this._lastFrameAt = 0;
    this._status = 'online';
    this._wanted = false;
    this._connectWaiters = [];
    // The transport layer: whether the current connection has carried a frame, the timer that
    // gives up on a silent WebSocket, and whether WebSockets are known not to get through.
    this._sawFrame = false;
    this._fallbackTimer = null;
    this._wsBlocked = false;
  }

  // ---- events ---------------------------------------------------------------------------

  /** Calls `fn(payload)` for every event of `type`; returns a function that unsubscribes. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type)?.delete(fn);
  }

  /** Like `on`, for the next event of `type` only. */
  once(type, fn) {
    const off = this.on(type, (payload) => {
      off();
      fn(payload);
    });
    return off;
  }

  /** Resolves with the next event of `type` for which `predicate` holds. */
  waitFor(type, predicate = () => true, timeoutMs = this.requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new ProtocolError('timeout', `no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(type, (payload) => {
        if (!predicate(payload)) return;
        clearTimeout(timer);
        off();
        resolve(payload);
      });
    });
  }

  _emit(type, payload) {
    for (const fn of [...(this._listeners.get(type) || [])]) {
      try {
        fn(payload);
      } catch (err) {
        // One faulty listener must not stop the others or the protocol loop.
        console.error(`tertulia client: listener for ${type} failed`, err);
      }
    }
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, attempt: this._attempt, ...extra });
  }

  // ---- connection -----------------------------------------------------------------------

  /** Opens the connection; resolves with the `welcome` frame (rejects if the first try fails). */
  connect() {
    this._wanted = true;
    if (this.state === 'open') return Promise.resolve(this.welcome);
    const waiter = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this.state !== 'connecting') this._open();
    return waiter;
  }

  /** Closes for good (no reconnect); pending requests fail with `disconnected`. */
  close() {
    this._wanted = false;
    clearTimeout(this._retryTimer);
    clearTimeout(this._fallbackTimer);
    this._stopHeartbeat();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        // Closing a socket that never opened can throw; it is gone either way.
      }
    }
    this._failPending('closed');
    this._setState('closed', { code: 1000 });
  }

  /** Drops the current socket as if the network failed (tests and "reconnect now" buttons). */
  reconnectNow() {
    if (this._ws) {
      try {
        this._ws.close(4000, 'client reconnect');
      } catch {
        // Already closing.
      }
    } else if (this._wanted) {
      clearTimeout(this._retryTimer);
      this._open();
    }
  }

  /** Opens a connection over the transport in use; `fallback`: the WebSocket just failed. */
  _open(fallback = false) {
    clearTimeout(this._retryTimer);
    clearTimeout(this._fallbackTimer);
    this._setState(this._attempt === 0 && !this.welcome ? 'connecting' : 'reconnecting');
    const http =
      this.transport === 'http' || (this.transport === 'auto' && (fallback || this._wsBlocked));
    this.using = http ? 'http' : 'websocket';
    this._sawFrame = false;
    let ws;
    try {
      ws = http ? this.createStream(this.streamUrl) : this.createSocket(this.url);
    } catch (err) {
      this._onClose(1006, String(err));
      return;
    }
    this._ws = ws;
    if (!http && this.transport === 'auto') {
      // An upgrade a proxy swallows neither fails nor opens: give up on it after a while.
      this._fallbackTimer = setTimeout(() => {
        if (this._ws !== ws || this._sawFrame) return;
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
        try {
          ws.close();
        } catch {
          // Never opened: gone either way.
        }
        this._onClose(1006, 'no frame in time');
      }, this.fallbackAfterMs);
    }
    ws.onmessage = (event) => this._onMessage(event.data);
    ws.onclose = (event) => {
      if (this._ws === ws) this._onClose(event.code, event.reason);
    };
    ws.onerror = () => {
      // A close event always follows; reconnecting is decided there.
    };
  }

  _onClose(code, reason) {
    this._ws = null;
    clearTimeout(this._fallbackTimer);
    if (this.using === 'websocket' && this.transport === 'auto' && !this._sawFrame && this._wanted) {
      // The WebSocket carried nothing: try the HTTP transport at once.
      this._open(true);
      return;
    }
    // Rooms must be joined again before anything is sent to them. A catch-up in progress
    // stops; the live messages it held back were not handed over, so the resume join (from
    // `lastMsgId`) brings them again.
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.catchUp = null;
    }
    this._stopHeartbeat();
    this._failPending('disconnected');
    const waiters = this._connectWaiters.splice(0);
    if (code === CLOSE_REVOKED) {
      this._wanted = false;
      this._setState('closed', { code, reason });
      this._emit('revoked', { code, reason });
      waiters.forEach((w) => w.reject(new ProtocolError('unauthorized', 'session revoked')));
      return;
    }
    if (!this._wanted) {
      this._setState('closed', { code, reason });
      return;
    }
    if (waiters.length && !this.welcome) {
      // The very first connection failed (e.g. not logged in): tell the caller, do not loop.
      this._wanted = false;
      this._setState('closed', { code, reason });
      waiters.forEach((w) =>
        w.reject(new ProtocolError('unavailable', `cannot connect (close ${code})`)),
      );
      return;
    }
    if (!this.autoReconnect) {
      this._wanted = false;
      this._setState('closed', { code, reason });
      return;
    }
    // Still waiting connect() calls carry over to the next attempt.
    this._connectWaiters.push(...waiters);
    this._attempt += 1;
    const { minMs, maxMs, factor } = this.backoff;
    const base = Math.min(maxMs, minMs * factor ** (this._attempt - 1));
    // Jitter spreads a whole lobby's reconnects after a server restart.
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this._setState('reconnecting', { code, reason, delay });
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _startHeartbeat(intervalMs) {
    this._stopHeartbeat();
    this._lastFrameAt = Date.now();
    // Browsers hide WebSocket pings, so a dead network is only noticed by our own pings.
    this._heartbeatTimer = setInterval(() => {
      if (Date.now() - this._lastFrameAt > intervalMs * 3) {
        this.reconnectNow();
        return;
      }
      this._sendRaw({ type: 'ping' });
    }, intervalMs);
  }

  _stopHeartbeat() {
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
  }

  // ---- sending --------------------------------------------------------------------------

  _sendRaw(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame without waiting for a reply; false when not connected. */
  send(frame) {
    return this.state === 'open' && this._sendRaw(frame);
  }

  /**
   * Sends a frame with a fresh `id` and resolves with the server's reply to it (its `ack` or
   * specific reply); rejects with a ProtocolError for an `error` frame, a drop or a timeout.
   */
  request(frame, { timeoutMs = this.requestTimeoutMs } = {}) {
    if (this.state !== 'open') {
      return Promise.reject(new ProtocolError('disconnected', 'not connected'));
    }
    const id = `r${this._nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ProtocolError('timeout', `no reply to ${frame.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      if (!this._sendRaw({ ...frame, id })) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new ProtocolError('disconnected', 'not connected'));
      }
    });
  }

  _failPending(code) {
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new ProtocolError(code, 'connection lost before the reply'));
      this._pending.delete(id);
    }
  }

  // ---- receiving ------------------------------------------------------------------------

  _onMessage(data) {
    this._lastFrameAt = Date.now();
    if (!this._sawFrame) {
      this._sawFrame = true;
      clearTimeout(this._fallbackTimer);
      // In 'auto', the HTTP transport is used only after a WebSocket failed: it stays.
      if (this.using === 'http' && this.transport === 'auto') this._wsBlocked = true;
      this._emit('transport', { transport: this.using });
    }
    let frame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : data.toString());
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== 'string') return;
    this._emit('frame', frame);

    if (frame.id !== undefined && frame.id !== null) {
      const pending = this._pending.get(String(frame.id));
      if (pending) {
        this._pending.delete(String(frame.id));
        clearTimeout(pending.timer);
        if (frame.type === 'error') {
          pending.reject(new ProtocolError(frame.code, frame.message, frame));
          return;
        }
        pending.resolve(frame);
        // Replies that are also events (room.joined, call.ringing...) go on to the handlers.
        if (frame.type === 'ack' || frame.type === 'pong' || frame.type === 'chat.history') return;
      }
    }

    switch (frame.type) {
      case 'welcome':
        this._onWelcome(frame);
        break;
      case 'presence.snapshot':
        this.users = new Map(frame.users.map((u) => [u.id, { ...u }]));
        // Users we knew who are missing from the snapshot went offline while we were away.
        this._emit('presence', { users: this.users, changed: frame.users.map((u) => u.id), snapshot: true });
        break;
      case 'presence.update':
        this._applyPresence([frame]);
        break;
      case 'presence.batch':
        this._applyPresence(frame.updates || []);
        break;
      case 'room.joined':
        this._onRoomJoined(frame);
        break;
      case 'chat.message':
        this._onChatMessage(frame);
        break;
      case 'pong':
      case 'ack':
        break;
      case 'error':
        this._emit('error', frame);
        break;
      default:
        this._emit(frame.type, frame);
    }
  }

  _onWelcome(frame) {
    const resumed = this.welcome !== null;
    this.welcome = frame;
    this._attempt = 0;
    this._setState('open', { resumed });
    if (frame.heartbeat_ms) this._startHeartbeat(frame.heartbeat_ms);
    this._emit('welcome', frame);
    for (const w of this._connectWaiters.splice(0)) w.resolve(frame);
    if (resumed) this._resume();
  }

  _applyPresence(updates) {
    const changed = [];
    for (const u of updates) {
      const id = u.user_id ?? u.id;
      const prev = this.users.get(id) || { id };
      const next = { ...prev, id, status: u.status ?? prev.status };
      for (const key of ['nickname', 'capabilities', 'themes']) {
        if (u[key] !== undefined) next[key] = u[key];
      }
      this.users.set(id, next);
      changed.push(id);
    }
    this._emit('presence', { users: this.users, changed, snapshot: false });
  }

  /** After a reconnect: our status, our rooms (with what we missed), then unsent chat. */
  async _resume() {
    if (this._status !== 'online') {
      this.send({ type: 'presence.set', status: this._status });
    }
    for (const room of [...this.rooms.keys()]) {
      try {
        await this._join(room);
      } catch (err) {
        if (err.code === 'disconnected' || err.code === 'timeout') return;
        this.rooms.delete(room);
        for (const [cid, m] of this.outbox) {
          if (m.room === room) this.outbox.delete(cid);
        }
        this._emit('room.lost', { room, error: err });
      }
    }
    this._flushOutbox();
  }

  _onRoomJoined(frame) {
    const room = this._roomState(frame.room);
    room.joined = true;
    const all = frame.messages || [];
    const fresh = [];
    for (const m of all) {
      if (this._remember(room, m)) fresh.push(m);
      this._markDelivered(m);
    }
    // Mutated in place so the joinRoom() promise (resolved with this frame) sees it too.
    frame.messages = fresh;
    // More was missed than the frame holds (protocol 1.1): live messages are held back from
    // now on, so the app gets the missed ones first, then the live ones, each once.
    if (frame.has_more === true && all.length) {
      const run = { buffer: [], done: null };
      room.catchUp = run;
      // Its first page is asked for now; it can only come after this frame's handlers.
      run.done = this._catchUp(frame.room, room, run, all[all.length - 1].msg_id);
    }
    this._emit('room.joined', frame);
    this._flushOutbox(frame.room);
  }

  /**
   * Fetches the missed messages of `room` after `after`, page by page (`chat.history` with
   * `after`), emitting each page as `chat.missed`, then hands over the live messages held
   * back meanwhile. Ends quietly when superseded (a drop, a new join, leaving the room).
   */
  async _catchUp(name, room, run, after) {
    const current = () => room.catchUp === run && this.rooms.get(name) === room;
    let hasMore = true;
    while (hasMore) {
      if (!current()) return;
      let reply;
      try {
        reply = await this.request({ type: 'chat.history', room: name, after, limit: CATCH_UP_PAGE });
      } catch (err) {
        if (!current()) return;
        if (err.code === 'timeout' || err.code === 'rate_limited') {
          // Over the rate limit the server drops frames unanswered: ask again shortly.
          await new Promise((r) => setTimeout(r, RESEND_AFTER_MS));
          continue;
        }
        room.catchUp = null;
        if (err.code === 'disconnected' || err.code === 'closed') return;
        // Refused (e.g. no longer allowed in): say the rest is missing, go on live.
        this._emit('chat.missed', { room: name, messages: [], has_more: true, error: err });
        this._releaseLive(room, run.buffer);
        return;
      }
      if (!current()) return;
      const page = reply.messages || [];
      const fresh = [];
      for (const m of page) {
        if (this._remember(room, m)) fresh.push(m);
        this._markDelivered(m);
      }
      hasMore = reply.has_more === true && page.length > 0;
      if (page.length) after = page[page.length - 1].msg_id;
      this._emit('chat.missed', { room: name, messages: fresh, has_more: hasMore });
    }
    room.catchUp = null;
    this._releaseLive(room, run.buffer);
  }

  /** Hands over live messages held back during a catch-up: those not seen, in order. */
  _releaseLive(room, buffer) {
    buffer.sort((a, b) => a.msg_id - b.msg_id);
    for (const m of buffer) {
      if (this._remember(room, m)) this._emit('chat.message', m);
    }
  }

  _onChatMessage(frame) {
    const room = this.rooms.get(frame.room);
    this._markDelivered(frame);
    if (room?.catchUp) {
      // Missed messages are still being fetched: this one waits its turn.
      room.catchUp.buffer.push(frame);
      return;
    }
    if (room && !this._remember(room, frame)) return;
    this._emit('chat.message', frame);
  }

  _roomState(name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = { lastMsgId: null, seen: new Set(), joined: false, catchUp: null };
      this.rooms.set(name, room);
    }
    return room;
  }

  /**
   * Resolves once `room` has no catch-up running: every missed message has been handed over
   * (as `room.joined` and `chat.missed`), or the catch-up stopped (a drop, an error).
   */
  async caughtUp(room) {
    let run = this.rooms.get(room)?.catchUp;
    while (run) {
      await run.done;
      const next = this.rooms.get(room)?.catchUp;
      if (next === run) break;
      run = next;
    }
  }

  /** Records a message as seen; false when it had been seen already. */
  _remember(room, m) {
    if (room.seen.has(m.msg_id)) return false;
    room.seen.add(m.msg_id);
    if (room.lastMsgId === null || m.msg_id > room.lastMsgId) room.lastMsgId = m.msg_id;
    return true;
  }

  _markDelivered(m) {
    const me = this.welcome?.user?.id;
    if (!m.client_msg_id || (m.from && m.from.id !== me)) return;
    const out = this.outbox.get(m.client_msg_id);
    if (!out) return;
    this.outbox.delete(m.client_msg_id);
    const delivered = {
      room: out.room,
      client_msg_id: m.client_msg_id,
      msg_id: m.msg_id,
      created_at: m.created_at,
    };
    out.resolve?.(delivered);
    this._emit('chat.delivered', delivered);
  }

  // ---- presence -------------------------------------------------------------------------

  /** The logged-in user, from `welcome`. */
  get me() {
    return this.welcome?.user || null;
  }

  /** Sets our status (online, busy, away); it is re-sent after a reconnect. */
  setStatus(status) {
    this._status = status;
    return this.request({ type: 'presence.set', status });
  }

  // ---- calls ----------------------------------------------------------------------------

  /** Invites a user (`media`: video, audio, chat); resolves with `call.ringing`. */
  invite(to, media, room) {
    const frame = { type: 'call.invite', to, media };
    if (room) frame.room = room;
    return this.request(frame);
  }

  /** Accepts a ringing call; resolves with `call.accepted`. */
  accept(callId) {
    const accepted = this.waitFor('call.accepted', (f) => f.call_id === callId);
    return this.request({ type: 'call.accept', call_id: callId }).then(
      (reply) => (reply.type === 'call.accepted' ? reply : accepted),
      (err) => {
        accepted.catch(() => {});
        throw err;
      },
    );
  }

  /** Declines a ringing call. */
  decline(callId) {
    return this.request({ type: 'call.decline', call_id: callId });
  }

  /** Cancels our own ringing invitation. */
  cancel(callId) {
    return this.request({ type: 'call.cancel', call_id: callId });
  }

  /** Leaves a call. */
  hangup(callId) {
    return this.request({ type: 'call.hangup', call_id: callId });
  }

  // ---- rooms and signaling --------------------------------------------------------------

  /** Joins a room (and keeps it joined across reconnects); resolves with `room.joined`. */
  joinRoom(room) {
    this._roomState(room);
    return this._join(room).catch((err) => {
      if (err.code !== 'disconnected' && err.code !== 'timeout') this.rooms.delete(room);
      throw err;
    });
  }

  async _join(name) {
    const room = this._roomState(name);
    const frame = { type: 'room.join', room: name };
    if (room.lastMsgId !== null) frame.since = room.lastMsgId;
    // The reply has been through _onRoomJoined by now: `messages` holds only unseen ones.
    return this.request(frame);
  }

  /** Leaves a room; its unsent messages are dropped. */
  leaveRoom(room) {
    this.rooms.delete(room);
    for (const [cid, m] of this.outbox) {
      if (m.room === room) this.outbox.delete(cid);
    }
    return this.request({ type: 'room.leave', room }).catch(() => {});
  }

  /** Sends WebRTC signaling (`kind`: offer, answer, candidate) to one peer of a room. */
  signal(room, to, kind, data) {
    return this.send({ type: 'signal', room, to, kind, data });
  }

  // ---- chat -----------------------------------------------------------------------------

  /**
   * Sends a chat message. It is pending until the server stores it; if the connection drops
   * first it is resent (same `client_msg_id`, so never stored twice) after the room is
   * rejoined. Returns `{client_msg_id, delivered}`: a promise of the `chat.delivered` payload.
   */
  sendChat(room, text, clientMsgId = newClientMsgId()) {
    let resolve;
    let reject;
    const delivered = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    delivered.catch(() => {});
    this.outbox.set(clientMsgId, { room, text, resolve, reject });
    this._emit('chat.pending', { room, client_msg_id: clientMsgId, text });
    // Not joined (yet, or again after a reconnect): sent as soon as the room is.
    if (this.state === 'open' && this.rooms.get(room)?.joined) this._sendOne(clientMsgId);
    return { client_msg_id: clientMsgId, delivered };
  }

  /** Sends the waiting messages of `room` (default: of every joined room). */
  _flushOutbox(room) {
    for (const [cid, out] of [...this.outbox]) {
      if ((room === undefined || out.room === room) && this.rooms.get(out.room)?.joined) this._sendOne(cid);
    }
  }

  _sendOne(cid) {
    const out = this.outbox.get(cid);
    if (!out || out.inFlight || this.state !== 'open') return;
    out.inFlight = true;
    this.request({ type: 'chat.send', room: out.room, client_msg_id: cid, text: out.text }).then(
      (ack) => this._markDelivered({ client_msg_id: cid, msg_id: ack.msg_id, created_at: ack.created_at }),
      (err) => {
        out.inFlight = false;
        if (err.code === 'disconnected' || err.code === 'closed') {
          return; // Resent after the next (re)connect.
        }
        if (err.code === 'timeout' || err.code === 'rate_limited') {
          // Over the rate limit the server drops frames unanswered: try again shortly (the
          // same client_msg_id, so a late first copy is not stored twice).
          setTimeout(() => this._sendOne(cid), RESEND_AFTER_MS);
          return;
        }
        this.outbox.delete(cid);
        out.reject?.(err);
        this._emit('chat.failed', { room: out.room, client_msg_id: cid, error: err });
      },
    );
  }

  /** Tells the room we are typing (send at most every few seconds). */
  typing(room) {
    return this.send({ type: 'chat.typing', room });
  }

  /** Older messages of a room: resolves with `{messages, has_more}`. */
  history(room, before, limit = 50) {
    const frame = { type: 'chat.history', room, limit };
    if (before !== undefined && before !== null) frame.before = before;
    return this.request(frame).then((reply) => {
      const state = this.rooms.get(room);
      if (state) for (const m of reply.messages || []) state.seen.add(m.msg_id);
      return reply;
    });
  }

  // ---- conversations (protocol revision 1.3) --------------------------------------------

  /** One's conversations, newest first: resolves with `conversations.list`. */
  conversations() {
    return this.request({ type: 'conversations.list' });
  }

  /** Marks `room` read up to `msgId`; resolves with `conversation.read` {msg_id, unread}. */
  markRead(room, msgId) {
    return this.request({ type: 'conversation.read', room, msg_id: msgId });
  }

  /** Brings `userId` into the conversation `room` (a direct one becomes a new group). */
  inviteToConversation(room, userId) {
    return this.request({ type: 'conversation.invite', room, user: userId });
  }
}
