// The HTTP transport of protocol v1 (docs/protocol.md, "The HTTP transport"), shaped like a
// WebSocket so that client.js drives it the same way: `onmessage({data})`, `onclose({code,
// reason})`, `send(text)`, `close(code, reason)`, `readyState`.
//
// Server → client: an EventSource on `GET /api/stream` (the session cookie goes with it). Its
// first event, `stream`, names the URL the frames are posted to; every frame is an event;
// `close` carries the close code (4001: revoked) and ends the stream. EventSource's own
// reconnection is not used: the protocol client reconnects and resumes itself, as over a
// WebSocket.
//
// Client → server: frames are POSTed as a JSON array, one request at a time, in order; frames
// sent while one is on its way go together in the next. A failed post (the stream is gone)
// counts as a lost connection.

/** `readyState` values, as WebSocket's. */
const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/** The event stream URL of the server this page came from. */
export function defaultStreamUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error('the HTTP transport needs a url outside a browser');
  return `${loc.protocol}//${loc.host}/api/stream`;
}

export class StreamSocket {
  constructor(url = defaultStreamUrl()) {
    this.url = url;
    this.readyState = CONNECTING;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this._postUrl = null;
    this._queue = [];
    this._posting = false;
    const es = new globalThis.EventSource(url, { withCredentials: true });
    this._es = es;
    es.addEventListener('stream', (event) => {
      try {
        this._postUrl = new URL(JSON.parse(event.data).post, url).href;
      } catch {
        this._end(1002, 'bad stream event');
        return;
      }
      this.readyState = OPEN;
      this.onopen?.({});
      this._flush();
    });
    es.addEventListener('message', (event) => this.onmessage?.({ data: event.data }));
    es.addEventListener('close', (event) => {
      let code = 1005;
      let reason = '';
      try {
        ({ code, reason } = JSON.parse(event.data));
      } catch {
        // A close event without a readable body still ends the stream.
      }
      this._end(code, reason);
    });
    // The stream failed or ended without a close event: a lost connection (EventSource would
    // retry on its own; the protocol client decides instead).
    es.onerror = () => this._end(1006, 'event stream lost');
  }

  /** Queues one frame (text); sent with the others queued meanwhile. */
  send(text) {
    if (this.readyState !== OPEN) throw new Error('the event stream is not open');
    this._queue.push(text);
    this._flush();
  }

  /** Ends the stream; 1000 tells the server the client leaves on purpose. */
  close(code = 1000, reason = '') {
    if (this.readyState === CLOSED) return;
    if (code === 1000 && this._postUrl) {
      fetch(this._postUrl, { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(
        () => {},
      );
    }
    // As a WebSocket's: the close event comes later, never from inside close().
    setTimeout(() => this._end(code, reason), 0);
  }

  _end(code, reason) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this._es.close();
    this._queue = [];
    this.onclose?.({ code, reason });
  }

  async _flush() {
    if (this._posting || !this._queue.length || !this._postUrl) return;
    this._posting = true;
    const batch = this._queue.splice(0);
    try {
      const res = await fetch(this._postUrl, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: `[${batch.join(',')}]`,
      });
      if (!res.ok) throw new Error(`post answered ${res.status}`);
    } catch {
      this._posting = false;
      this._end(1006, 'event stream lost');
      return;
    }
    this._posting = false;
    this._flush();
  }
}
