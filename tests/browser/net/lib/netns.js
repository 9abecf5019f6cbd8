// The namespace tests' networks (made by ../netns.sh, which run.sh calls around each file)
// and what a test does to them: browsers launched inside a namespace, a direct path opened
// or cut, TURN's UDP dropped. The test driver itself runs inside `tertulia-r`, beside the
// Tertulia server and coturn, so Playwright's pipe reaches browsers in the other two.

import { spawnSync } from 'node:child_process';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS } from '../../lib/browser.js';
import { startServer } from '../../lib/server.js';
import { startCoturn } from './coturn.js';

/** The namespace of the services (and of the test driver). */
export const NS_R = 'tertulia-r';
/** Ana's network: 10.213.1.2/24. */
export const NS_A = 'tertulia-a';
/** Bia's network: 10.213.2.2/24. */
export const NS_B = 'tertulia-b';
/** Where the Tertulia server and coturn listen, reachable from both networks. */
export const SERVICES_IP = '10.213.9.1';
/** The address of each browser namespace. */
export const HOST_IP = { [NS_A]: '10.213.1.2', [NS_B]: '10.213.2.2' };

/** Runs a command inside namespace `ns`; throws with its output when it fails. */
export function inNs(ns, ...cmd) {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${ns}: ${cmd.join(' ')} → ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Whether `ns` has a route to `ip` (no route: the kernel refuses before sending anything). */
export function routes(ns, ip) {
  return spawnSync('ip', ['-n', ns, 'route', 'get', ip], { encoding: 'utf8' }).status === 0;
}

/** Gives the two networks a direct path to each other, through tertulia-r forwarding. */
export function openDirectPath() {
  inNs(NS_A, 'ip', 'route', 'replace', '10.213.2.0/24', 'via', '10.213.1.1');
  inNs(NS_B, 'ip', 'route', 'replace', '10.213.1.0/24', 'via', '10.213.2.1');
  inNs(NS_R, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward');
}

/** Cuts the direct path: every forwarded packet is dropped silently (as a dead link does). */
export function cutDirectPath() {
  inNs(NS_R, 'iptables', '-I', 'FORWARD', '-j', 'DROP');
}

/** Drops every UDP packet to coturn's `port`: TURN is then reachable only over TCP. */
export function dropTurnUdp(port) {
  inNs(NS_R, 'iptables', '-I', 'INPUT', '-p', 'udp', '-d', SERVICES_IP, '--dport', String(port), '-j', 'DROP');
}

/** Undoes `dropTurnUdp`. */
export function allowTurnUdp(port) {
  inNs(NS_R, 'iptables', '-D', 'INPUT', '-p', 'udp', '-d', SERVICES_IP, '--dport', String(port), '-j', 'DROP');
}

/** Runs Chromium through `ip netns exec` (Playwright's pipe survives the exec). */
const WRAPPER = fileURLToPath(new URL('./chromium-in-netns.sh', import.meta.url));

/**
 * Debian's headless Chromium inside namespace `ns`, with the usual flags but without
 * `--allow-loopback-in-peer-connection` (the namespace's own interface is the only path),
 * and `origin` (plain http on a non-loopback address) treated as secure so the page may
 * use the camera.
 */
export async function launchIn(ns, origin) {
  return chromium.launch({
    executablePath: WRAPPER,
    args: [
      ...CHROMIUM_ARGS.filter((a) => a !== '--allow-loopback-in-peer-connection'),
      `--unsafely-treat-insecure-origin-as-secure=${origin}`,
    ],
    env: { ...process.env, TERTULIA_NETNS: ns, CHROMIUM: process.env.CHROMIUM || '/usr/bin/chromium' },
  });
}

/**
 * The selected ICE candidate pair of every open connection on `page`: one
 * {state, local: {type, protocol, relayProtocol, address}, remote: {...}} per connection.
 */
export async function selectedPairs(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      const stats = await pc.getStats();
      const byId = new Map();
      stats.forEach((s) => byId.set(s.id, s));
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
      });
      const cand = (id) => {
        const c = byId.get(id);
        return c ? { type: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol, address: c.address } : null;
      };
      out.push({ state: pc.connectionState, local: pair && cand(pair.localCandidateId), remote: pair && cand(pair.remoteCandidateId) });
    }
    return out;
  });
}

/** Both browsers' networks (10.213.1.0/24 and 10.213.2.0/24), as coturn writes a range. */
export const BROWSER_NETWORKS = '10.213.1.0-10.213.2.255';

/** The `--ice-urls` of coturn on the services' address at `port`, over UDP and TCP. */
export const turnUrls = (port) => `turn:${SERVICES_IP}:${port}?transport=udp,turn:${SERVICES_IP}:${port}?transport=tcp`;

/**
 * One file's world for calls between the two networks: coturn on the services' address
 * (`port`, `secret`; it never relays to the browsers' own addresses, as a deployment's
 * `denied-peer-ip` keeps it off private ranges), a Tertulia server handing out its
 * credentials (with `serverArgs` besides), and a browser in each of `tertulia-a` and
 * `tertulia-b`, started before the file's tests (after `beforeStart`) and stopped after
 * them. Read `server` and `browsers` inside a test.
 */
export function relayWorld({ port, secret, serverArgs = [], beforeStart = () => {} }) {
  const world = { server: undefined, coturn: undefined, browsers: [] };
  before(async () => {
    beforeStart();
    world.coturn = await startCoturn({
      listen: [SERVICES_IP],
      relay: SERVICES_IP,
      port,
      secret,
      extra: ['--denied-peer-ip', BROWSER_NETWORKS],
    });
    world.server = await startServer({
      host: SERVICES_IP,
      extraArgs: ['--ice-urls', turnUrls(port), '--turn-secret', secret, ...serverArgs],
    });
    world.browsers = [await launchIn(NS_A, world.server.url), await launchIn(NS_B, world.server.url)];
  });
  after(async () => {
    for (const b of world.browsers) await b.close();
    await world.server?.stop();
    await world.coturn?.stop();
  });
  return world;
}
