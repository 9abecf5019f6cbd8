// Debian's coturn started as a plain process for one test file (never the system service):
// REST credentials (`use-auth-secret` + `static-auth-secret`) and a realm, listening only
// on the addresses the test owns, on ports the test picks, logging verbosely to a
// temporary directory so tests can read what coturn decided (e.g. `error 401`).
// `netns`: run it inside that network namespace (`ip netns exec`).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How long coturn may take to open its listeners, in ms. */
const START_TIMEOUT_MS = 15_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Whether a TCP connection to `host:port` opens (run inside `netns` when given). */
function tcpOpens(host, port, netns) {
  if (netns) {
    // Node lives in another namespace: ask bash inside the namespace.
    const r = spawnSync('ip', ['netns', 'exec', netns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], { timeout: 3000 });
    return Promise.resolve(r.status === 0);
  }
  return new Promise((ok) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.destroy(); ok(true); });
    s.once('error', () => ok(false));
  });
}

/** A running coturn; `port` is its TURN port (UDP and TCP). */
export class Coturn {
  /**
   * `listen`: addresses to listen on; `relay`: the relay address; `port`: the TURN port;
   * `secret`, `realm`: coturn's REST scheme; `extra`: more turnserver options.
   */
  constructor({ listen = ['127.0.0.1'], relay = '127.0.0.1', port, secret, realm = 'tertulia.test', extra = [], netns = null }) {
    this.listen = listen;
    this.relay = relay;
    this.port = port;
    this.secret = secret;
    this.realm = realm;
    this.extra = extra;
    this.netns = netns;
    this.dir = mkdtempSync(join(tmpdir(), 'tertulia-coturn-'));
    this.logFile = join(this.dir, 'turn.log');
    this.proc = null;
  }

  async start() {
    // A relay port range of its own, away from the usual ephemeral ports, per port picked.
    const minPort = 20000 + (this.port % 200) * 150;
    const args = [
      '--no-cli', '-n', '-v', '--simple-log', '--no-stdout-log',
      '--log-file', this.logFile,
      '--pidfile', join(this.dir, 'turn.pid'),
      ...this.listen.flatMap((ip) => ['--listening-ip', ip]),
      '--relay-ip', this.relay,
      '--listening-port', String(this.port),
      '--min-port', String(minPort), '--max-port', String(minPort + 149),
      '--use-auth-secret', '--static-auth-secret', this.secret,
      '--realm', this.realm,
      '--no-tls', '--no-dtls', '--no-multicast-peers',
      ...this.extra,
    ];
    const cmd = this.netns ? 'ip' : 'turnserver';
    const full = this.netns ? ['netns', 'exec', this.netns, 'turnserver', ...args] : args;
    this.proc = spawn(cmd, full, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.stderr = '';
    this.proc.stderr.on('data', (c) => { this.stderr += c; });
    this.exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const early = await Promise.race([this.exited, sleep(150).then(() => null)]);
      if (early) throw new Error(`turnserver exited (${JSON.stringify(early)}): ${this.stderr}\n${this.log()}`);
      if (await tcpOpens(this.listen[0], this.port, this.netns)) return this;
    }
    throw new Error(`turnserver did not listen within ${START_TIMEOUT_MS} ms:\n${this.log()}`);
  }

  /** Everything coturn logged so far (its log file gets a date suffix with --simple-log off). */
  log() {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const done = await Promise.race([this.exited, sleep(3000).then(() => null)]);
      if (!done) {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    this.proc = null;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts coturn; call `stop()` in `after`. */
export async function startCoturn(options) {
  return new Coturn(options).start();
}

/**
 * Runs `turnutils_uclient` (coturn's test client) once: one client allocating a relay and
 * sending `messages` to a second client's relay (`-y`) through the server at `host:port`
 * over UDP (or TCP with `tcp`). Resolves with {status, out}: status 0 is a working
 * allocation with data relayed, anything else a failure.
 */
export function uclient({ host, port, username, credential, tcp = false, messages = 3, netns = null }) {
  const args = ['-y', '-c', '-n', String(messages), '-m', '1', '-u', username, '-w', credential, '-p', String(port), ...(tcp ? ['-t'] : []), host];
  const cmd = netns ? 'ip' : 'turnutils_uclient';
  const full = netns ? ['netns', 'exec', netns, 'turnutils_uclient', ...args] : args;
  return new Promise((ok) => {
    const proc = spawn('timeout', ['-k', '2', '15', cmd, ...full], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (c) => { out += c; });
    proc.stderr.on('data', (c) => { out += c; });
    proc.on('exit', (status) => ok({ status, out }));
  });
}
