// coturn for real: Debian's turnserver on a free loopback port with `use-auth-secret`, the
// same `static-auth-secret` as the Tertulia server and a realm. coturn's own test client
// (`turnutils_uclient`) gets an allocation, and relays data, with the credentials the real
// server hands out from `/api/ice-servers`; it is refused (401 Unauthorized, in coturn's
// log) with the same credentials once expired, and with forged ones.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { freePort, startServer } from '../lib/server.js';
import { startCoturn, uclient } from './lib/coturn.js';

const SECRET = 'turn-test-secret-01';
/** Minted credentials live this long: long enough to use once, short enough to wait out. */
const TTL_SECS = 10;

let server;
let coturn;
before(async () => {
  const port = await freePort();
  coturn = await startCoturn({ port, secret: SECRET, extra: ['--allow-loopback-peers'] });
  server = await startServer({
    extraArgs: [
      '--ice-urls', `turn:127.0.0.1:${port}?transport=udp,turn:127.0.0.1:${port}?transport=tcp`,
      '--turn-secret', SECRET,
      '--turn-ttl-secs', String(TTL_SECS),
    ],
  });
});
after(async () => {
  await server?.stop();
  await coturn?.stop();
});

/** The TURN entry of `/api/ice-servers`, asked as `login`. */
async function turnEntry(login) {
  const res = await fetch(`${server.url}/api/ice-servers`, { headers: { Authorization: `Bearer ${login.token}` } });
  assert.equal(res.status, 200);
  const body = await res.json();
  const turn = body.ice_servers.find((s) => s.urls.some((u) => u.startsWith('turn:')));
  assert.ok(turn, `a TURN entry: ${JSON.stringify(body)}`);
  return turn;
}

/** The lines coturn logged about `username` (after the first `from` characters of its log). */
function logFor(username, from = 0) {
  return coturn.log().slice(from).split('\n').filter((l) => l.includes(`user <${username}>`));
}

/** Asserts that an allocation with these credentials failed and coturn said 401. */
async function assertRefused(username, credential, why) {
  const from = coturn.log().length;
  const run = await uclient({ host: '127.0.0.1', port: coturn.port, username, credential });
  assert.notEqual(run.status, 0, `${why}: uclient must fail:\n${run.out}`);
  assert.match(run.out, /Cannot complete Allocation/, why);
  const lines = logFor(username, from);
  assert.ok(lines.some((l) => /error 401: Unauthorized/.test(l)), `${why}: coturn answered 401:\n${lines.slice(-5).join('\n')}`);
  assert.ok(!lines.some((l) => /ALLOCATE processed, success/.test(l)), `${why}: no allocation was granted`);
}

test('credentials from /api/ice-servers get a TURN allocation that relays data; expired and forged ones get 401', async () => {
  const login = await server.user('ana');
  const turn = await turnEntry(login);
  const [expiry, userId] = turn.username.split(':');
  assert.equal(userId, String(login.user.id), 'the username names the user');

  // Fresh credentials: an allocation, and the messages relayed to the peer and back.
  const ok = await uclient({ host: '127.0.0.1', port: coturn.port, username: turn.username, credential: turn.credential });
  assert.equal(ok.status, 0, `uclient with the server's credentials:\n${ok.out}\n${coturn.log().slice(-2000)}`);
  assert.match(ok.out, /tot_recv_msgs=[1-9]/, 'data went through the relay');
  assert.ok(logFor(turn.username).some((l) => /ALLOCATE processed, success/.test(l)), 'coturn granted the allocation');
  // Over TCP as well (the transport of strict firewalls), with fresh credentials.
  const again = await turnEntry(login);
  const okTcp = await uclient({ host: '127.0.0.1', port: coturn.port, username: again.username, credential: again.credential, tcp: true });
  assert.equal(okTcp.status, 0, `uclient over TCP:\n${okTcp.out}`);

  // Forged: a later expiry with the same credential; another user's id; a wrong secret.
  await assertRefused(`${Number(expiry) + 86400}:${userId}`, turn.credential, 'a stretched expiry');
  await assertRefused(`${expiry}:${Number(userId) + 1}`, turn.credential, "another user's name");
  const wrongSecret = createHmac('sha1', 'not-the-secret').update(turn.username).digest('base64');
  await assertRefused(turn.username, wrongSecret, 'a credential signed with the wrong secret');

  // Expired: the very credentials that worked, once their TTL is over.
  const waitMs = Number(expiry) * 1000 - Date.now() + 1500;
  if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
  await assertRefused(turn.username, turn.credential, 'the same credentials after their expiry');
});
