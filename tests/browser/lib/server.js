// Starts the real Tertulia binary for one test file: a free port on 127.0.0.1, a fresh
// database in a temporary directory, short ring timeout. `restart()` kills the process and
// starts it again on the same port and database (a real connection cut).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests/browser/lib → ../../..). */
export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** The debug binary run.sh builds; TERTULIA_BIN overrides it. */
const BIN = process.env.TERTULIA_BIN || join(REPO, 'target', 'debug', 'tertulia');

/** How long a start may take before the test gives up, in ms. */
const START_TIMEOUT_MS = 30_000;

/** A free TCP port on the loopback interface. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A running server; `url` is `http://HOST:PORT` (127.0.0.1 unless `host` says otherwise). */
export class TestServer {
  /** `host`: the address to listen on (a namespace test's own, say), 127.0.0.1 by default. */
  constructor({ ringTimeoutMs = 4000, extraArgs = [], host = '127.0.0.1' } = {}) {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run cargo build first`);
    this.dir = mkdtempSync(join(tmpdir(), 'tertulia-browser-'));
    // TERTULIA_BROWSER_DATABASE_URL (a postgres:// URL, set by `tests/pg.sh --browser`) runs
    // the scenario on PostgreSQL; otherwise a fresh SQLite file.
    this.db = process.env.TERTULIA_BROWSER_DATABASE_URL || join(this.dir, 'test.db');
    this.ringTimeoutMs = ringTimeoutMs;
    this.extraArgs = extraArgs;
    this.host = host;
    this.proc = null;
    this.port = null;
    this.log = [];
  }

  get url() {
    return `http://${this.host}:${this.port}`;
  }

  get wsUrl() {
    return `ws://${this.host}:${this.port}/ws`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    const args = [
      'serve',
      '--bind', `${this.host}:${this.port}`,
      '--database-url', this.db,
      '--web-dir', join(REPO, 'web'),
      '--workers', '2',
      '--ring-timeout-ms', String(this.ringTimeoutMs),
      // Logins are many and fast in tests; the limiter is tested elsewhere.
      '--login-attempts', '1000',
      ...this.extraArgs,
    ];
    const proc = spawn(BIN, args, {
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const keep = (chunk) => {
      this.log.push(chunk.toString());
      if (this.log.length > 400) this.log.splice(0, 200);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    this.exited = exited;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const early = await Promise.race([exited, sleep(100).then(() => null)]);
      if (early) throw new Error(`server exited early (${JSON.stringify(early)}):\n${this.log.join('')}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return this;
      } catch {
        // Not listening yet.
      }
    }
    throw new Error(`server did not answer /healthz within ${START_TIMEOUT_MS} ms:\n${this.log.join('')}`);
  }

  /** Kills the process (SIGKILL: connections drop as in a crash) and waits for it. */
  async kill() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await this.exited;
  }

  /** Kills and starts again on the same port and database. */
  async restart() {
    await this.kill();
    await this.start();
  }

  async stop() {
    if (this.proc) {
      const proc = this.proc;
      this.proc = null;
      proc.kill('SIGTERM');
      const done = await Promise.race([this.exited, sleep(7000).then(() => null)]);
      if (!done) {
        proc.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Registers a user over HTTP and logs in; resolves with {user, token, nickname, password}. */
  async user(nickname, { themes = ['Jogos'], capabilities = ['video', 'audio', 'text'], password = 'correct horse battery' } = {}) {
    const post = async (path, body) => {
      const res = await fetch(`${this.url}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const json = await res.json().catch(() => null);
      if (!res.ok) throw new Error(`${path} → ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    await post('/api/register', { nickname, password, themes, capabilities });
    const login = await post('/api/login', { nickname, password });
    return { ...login, nickname, password };
  }

  /**
   * Makes an existing account an admin with the real command (`tertulia admin create` keeps
   * the password of an account that exists), as an operator would.
   */
  makeAdmin(nickname) {
    const run = spawnSync(BIN, ['admin', 'create', '--nickname', nickname, '--database-url', this.db], {
      input: '',
      env: { ...process.env, RUST_LOG: 'warn' },
    });
    if (run.status !== 0) throw new Error(`admin create ${nickname}: ${run.stderr}`);
  }
}

/** Starts a server for a test file; call `stop()` in `after`. */
export async function startServer(options) {
  const server = new TestServer(options);
  await server.start();
  return server;
}
