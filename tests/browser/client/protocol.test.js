// web/js/client.js on its own, in Node, against the real server: connecting with a bearer
// token, presence, requests and errors by id, chat delivery, resume after a drop without
// duplicates, calls and signaling, and a revoked session.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { TertuliaClient, directRoom, newClientMsgId } from '../../../web/js/client.js';
import { startServer } from '../lib/server.js';

let server;
const clients = [];

before(async () => {
  server = await startServer({ ringTimeoutMs: 3000 });
});

after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

/**
 * A connected client for a fresh user (on `options.server`, by default the file's server).
 * `options.wrapSocket(ws)` may wrap its sockets (to hold frames back).
 */
async function connected(nickname, options = {}) {
  const srv = options.server || server;
  const wrap = options.wrapSocket || ((ws) => ws);
  const login = await srv.user(nickname, options.user);
  const client = new TertuliaClient({
    url: srv.wsUrl,
    createSocket: (url) => wrap(new WebSocket(url, { headers: { Authorization: `Bearer ${login.token}` } })),
    backoff: { minMs: 100, maxMs: 1000 },
    ...options.client,
  });
  clients.push(client);
  await client.connect();
  return { client, login, id: login.user.id };
}

/** Collects the texts of a room's messages from both live frames and resumes. */
function collect(client, room) {
  const texts = [];
  client.on('chat.message', (m) => m.room === room && texts.push(m.text));
  client.on('room.joined', (f) => f.room === room && texts.push(...f.messages.map((m) => m.text)));
  return texts;
}

async function until(check, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('the protocol client', () => {
  test('connects with a bearer token and is welcomed as itself, listed online', async () => {
    const { client, id } = await connected('ana_c1');
    assert.equal(client.state, 'open');
    assert.equal(client.me.id, id);
    assert.equal(client.me.nickname, 'ana_c1');
    await until(() => client.users.get(id)?.status === 'online', 'own presence');
  });

  test('sees another user come online and go offline, pushed by the server', async () => {
    const { client: watcher } = await connected('bia_c2');
    const { client: other, id: otherId } = await connected('caio_c2');
    await until(() => watcher.users.get(otherId)?.status === 'online', 'caio online');
    other.close();
    await until(() => watcher.users.get(otherId)?.status === 'offline', 'caio offline');
  });

  test('an error reply rejects the request with the server code, and the connection stays', async () => {
    const { client } = await connected('dora_c3');
    await assert.rejects(client.joinRoom('dm:999998:999999'), (err) => err.code === 'forbidden');
    const reply = await client.setStatus('busy');
    assert.equal(reply.type, 'ack');
    assert.equal(client.state, 'open');
  });

  test('a chat message goes pending, then delivered, and reaches the other side once', async () => {
    const a = await connected('edu_c4');
    const b = await connected('fia_c4');
    const room = directRoom(a.id, b.id);
    await a.client.joinRoom(room);
    await b.client.joinRoom(room);
    const seen = collect(b.client, room);
    const states = [];
    a.client.on('chat.pending', () => states.push('pending'));
    a.client.on('chat.delivered', () => states.push('delivered'));
    const { delivered } = a.client.sendChat(room, 'olá, tudo bem?');
    const d = await delivered;
    assert.ok(d.msg_id > 0);
    assert.deepEqual(states, ['pending', 'delivered']);
    await until(() => seen.length === 1, 'message at b');
    assert.deepEqual(seen, ['olá, tudo bem?']);
  });

  test('the same client_msg_id sent twice is stored once', async () => {
    const a = await connected('gil_c5');
    const b = await connected('hana_c5');
    const room = directRoom(a.id, b.id);
    await a.client.joinRoom(room);
    const cid = newClientMsgId();
    const first = await a.client.sendChat(room, 'só uma vez', cid).delivered;
    const second = await a.client.sendChat(room, 'só uma vez', cid).delivered;
    assert.equal(second.msg_id, first.msg_id);
    const history = await a.client.history(room);
    assert.equal(history.messages.filter((m) => m.text === 'só uma vez').length, 1);
  });

  test('messages sent while disconnected are delivered after the reconnect, exactly once', async () => {
    const a = await connected('ivo_c6', { client: { backoff: { minMs: 800, maxMs: 800 } } });
    const b = await connected('jo_c6');
    const room = directRoom(a.id, b.id);
    await a.client.joinRoom(room);
    await b.client.joinRoom(room);
    const seen = collect(b.client, room);
    a.client.reconnectNow();
    await until(() => a.client.state === 'reconnecting', 'a reconnecting');
    const sends = ['um', 'dois', 'três'].map((text) => a.client.sendChat(room, text));
    await Promise.all(sends.map((s) => s.delivered));
    await until(() => seen.length >= 3, 'three messages at b');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen, ['um', 'dois', 'três']);
  });

  test('a message sent before its room is joined waits for the join instead of failing', async () => {
    const a = await connected('sara_c11');
    const b = await connected('tom_c11');
    const room = directRoom(a.id, b.id);
    const joining = a.client.joinRoom(room);
    const { delivered } = a.client.sendChat(room, 'cedo demais?');
    await joining;
    const d = await delivered;
    assert.ok(d.msg_id > 0);
  });

  test('a client that was away gets what it missed when it rejoins, with since', async () => {
    const a = await connected('kai_c7');
    const b = await connected('lia_c7', { client: { backoff: { minMs: 1500, maxMs: 1500 } } });
    const room = directRoom(a.id, b.id);
    await a.client.joinRoom(room);
    await b.client.joinRoom(room);
    const seen = collect(b.client, room);
    await a.client.sendChat(room, 'antes').delivered;
    await until(() => seen.length === 1, 'first message');
    b.client.reconnectNow();
    await until(() => b.client.state === 'reconnecting', 'b reconnecting');
    await a.client.sendChat(room, 'durante 1').delivered;
    await a.client.sendChat(room, 'durante 2').delivered;
    await until(() => seen.length >= 3, 'missed messages after resume');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen, ['antes', 'durante 1', 'durante 2']);
  });

  test('a client away for a thousand messages gets them all, in order, once, and the live ones after', async () => {
    // A server of its own whose frame rate lets one connection send a thousand messages fast.
    const fast = await startServer({ extraArgs: ['--ws-rate-per-sec', '100000', '--ws-rate-burst', '100000'] });
    try {
      // Bia's catch-up requests can be held back, so that a live message surely arrives
      // while she is still fetching what she missed.
      let gate = null;
      const holdHistory = (ws) => {
        const send = ws.send.bind(ws);
        ws.send = (data) => {
          if (!gate || !String(data).includes('"chat.history"')) return send(data);
          gate.then(() => {
            if (ws.readyState === 1) send(data);
          });
        };
        return ws;
      };
      const a = await connected('ana_c12', { server: fast });
      const b = await connected('bia_c12', {
        server: fast,
        wrapSocket: holdHistory,
        // She reconnects when the test says so, not on a timer.
        client: { backoff: { minMs: 600_000, maxMs: 600_000 } },
      });
      const room = directRoom(a.id, b.id);
      await a.client.joinRoom(room);
      await b.client.joinRoom(room);
      // Everything Bia's app is handed, in the order it is handed over.
      const got = [];
      const missedPages = [];
      b.client.on('room.joined', (f) => f.room === room && got.push(...f.messages));
      b.client.on('chat.missed', (f) => {
        if (f.room !== room) return;
        missedPages.push(f);
        got.push(...f.messages);
      });
      b.client.on('chat.message', (m) => m.room === room && got.push(m));
      await a.client.sendChat(room, 'antes').delivered;
      await until(() => got.length === 1, 'the first message');

      b.client.reconnectNow();
      await until(() => b.client.state === 'reconnecting', 'bia away');
      const missed = Array.from({ length: 1000 }, (_, i) => `perdida ${i + 1}`);
      for (let i = 0; i < missed.length; i += 100) {
        await Promise.all(missed.slice(i, i + 100).map((text) => a.client.sendChat(room, text).delivered));
      }

      // Back: the resume join says there is more. While her pages are held back, Ana says
      // something live, and it reaches Bia's socket in the middle of the catch-up.
      let release;
      gate = new Promise((r) => {
        release = r;
      });
      const liveSeen = b.client.waitFor('frame', (f) => f.type === 'chat.message' && f.text === 'ao vivo', 20_000);
      const resumed = b.client.waitFor('room.joined', (f) => f.room === room, 20_000);
      b.client.reconnectNow();
      const joined = await resumed;
      assert.equal(joined.has_more, true);
      assert.equal(joined.messages.length, 200);
      await a.client.sendChat(room, 'ao vivo').delivered;
      await liveSeen;
      assert.ok(b.client.rooms.get(room).catchUp, 'the live message came during the catch-up');
      release();
      gate = null;
      await b.client.caughtUp(room);
      await until(() => got.length >= 1002, 'every message handed over', 20_000);
      await new Promise((r) => setTimeout(r, 300));

      assert.deepEqual(got.map((m) => m.text), ['antes', ...missed, 'ao vivo']);
      const ids = got.map((m) => m.msg_id);
      assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'strictly increasing msg_ids');
      assert.equal(missedPages.at(-1).has_more, false);
      assert.ok(missedPages.length >= 4, `${missedPages.length} pages after the join`);
    } finally {
      for (const c of clients.splice(0)) c.close();
      await fast.stop();
    }
  });

  test('a call rings, is accepted, and signaling reaches the other peer in the call room', async () => {
    const a = await connected('max_c8');
    const b = await connected('nina_c8');
    const incoming = b.client.waitFor('call.incoming');
    const ringing = await a.client.invite(b.id, 'video');
    assert.equal(ringing.type, 'call.ringing');
    const call = await incoming;
    assert.equal(call.from.nickname, 'max_c8');
    assert.equal(call.media, 'video');
    const acceptedAtA = a.client.waitFor('call.accepted');
    const accepted = await b.client.accept(call.call_id);
    assert.equal(accepted.room, ringing.room);
    await acceptedAtA;
    const joinedA = await a.client.joinRoom(ringing.room);
    assert.equal(joinedA.peers.length, 0);
    const peerJoined = a.client.waitFor('room.peer_joined');
    const joinedB = await b.client.joinRoom(ringing.room);
    assert.equal(joinedB.peers.length, 1);
    assert.equal(joinedB.peers[0].polite, true, 'the newcomer is the polite one');
    const { peer } = await peerJoined;
    assert.equal(peer.polite, false);
    const signal = b.client.waitFor('signal');
    a.client.signal(ringing.room, peer.peer_id, 'offer', { type: 'offer', sdp: 'v=0' });
    const got = await signal;
    assert.equal(got.from, a.client.welcome.session_id);
    assert.deepEqual(got.data, { type: 'offer', sdp: 'v=0' });
    const ended = b.client.waitFor('call.ended');
    await a.client.hangup(ringing.call_id);
    await ended;
  });

  test('an unanswered call is missed on both sides after the ring timeout', async () => {
    const a = await connected('olga_c9');
    const b = await connected('paulo_c9');
    const missedAtB = b.client.waitFor('call.missed', () => true, 15000);
    const ringing = await a.client.invite(b.id, 'audio');
    const missedAtA = a.client.waitFor('call.missed', (f) => f.call_id === ringing.call_id, 15000);
    await Promise.all([missedAtA, missedAtB]);
  });

  test('a revoked session closes with 4001 and does not reconnect', async () => {
    const a = await connected('rui_c10');
    const revoked = a.client.waitFor('revoked');
    const res = await fetch(`${server.url}/api/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${a.login.token}` },
    });
    assert.equal(res.status, 204);
    const event = await revoked;
    assert.equal(event.code, 4001);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(a.client.state, 'closed');
  });
});
