// A TCP proxy between one browser page and the server, so a test can cut that page's network
// for real: `cut()` resets every connection through it (the page's WebSocket sees the drop,
// the server sees the TCP connection end) and refuses new ones for a while, as a flaky Wi-Fi
// would. WebRTC media goes peer to peer, not through here, so it is not cut.

import { createConnection, createServer } from 'node:net';

/** A running proxy to `127.0.0.1:targetPort`; `url` is what the page should load. */
export class TcpProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.port = null;
    /** Open client↔server socket pairs. */
    this.pairs = new Set();
    this.refusing = false;
    this.server = createServer((client) => this.onClient(client));
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  start() {
    return new Promise((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        ok(this);
      });
    });
  }

  onClient(client) {
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
    const pair = { client, upstream };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      if (!client.destroyed) client.destroy();
      if (!upstream.destroyed) upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /**
   * Resets every connection through the proxy (both sides at once) and refuses new ones for
   * `downMs`; returns how many connections were cut.
   */
  cut({ downMs = 1500 } = {}) {
    this.refusing = true;
    const cut = this.pairs.size;
    for (const { client, upstream } of [...this.pairs]) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.pairs.clear();
    clearTimeout(this.healTimer);
    this.healTimer = setTimeout(() => this.heal(), downMs);
    return cut;
  }

  /** Takes connections again at once (ends a `cut` before its `downMs`). */
  heal() {
    clearTimeout(this.healTimer);
    this.refusing = false;
  }

  stop() {
    clearTimeout(this.healTimer);
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    return new Promise((ok) => this.server.close(() => ok()));
  }
}

/** Starts a proxy to `targetPort`; call `stop()` when done. */
export function startProxy(targetPort) {
  return new TcpProxy(targetPort).start();
}
