// Scenario 25: two nodes of one community (issue 18). Ana's browser is served by node 1 and
// Bia's by node 2 (one PostgreSQL database, one Redis of the test's own): each sees the other
// online in the lobby, they chat both ways, and make a video call that connects both ways,
// signaling crossing from node to node through Redis.
//
// Needs PostgreSQL: it runs with `tests/pg.sh --browser 25-two-nodes` (tests/run.sh does);
// in the SQLite pass it says SKIP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestServer, freePort } from '../lib/server.js';
import { launch, newPage, personIn, registerViaUi, screenshot, waitForMedia } from '../lib/browser.js';

const database = process.env.TERTULIA_BROWSER_DATABASE_URL || '';
const skip = database.startsWith('postgres')
  ? false
  : 'several nodes need PostgreSQL: run by tests/pg.sh --browser 25-two-nodes';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const world = { redis: undefined, redisDir: undefined, nodes: [], browser: undefined };

/** A redis-server of this scenario's own on a free port, keeping nothing on disk. */
async function startRedis() {
  const port = await freePort();
  world.redisDir = mkdtempSync(join(tmpdir(), 'tertulia-redis-'));
  world.redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', world.redisDir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      // redis-server answers an HTTP request by closing the connection: listening is enough.
      await fetch(`http://127.0.0.1:${port}/`).catch((e) => {
        if (e.cause?.code === 'ECONNREFUSED') throw e;
      });
      return `redis://127.0.0.1:${port}`;
    } catch {
      await sleep(50);
    }
  }
  throw new Error('redis-server did not start');
}

before(async () => {
  if (skip) return;
  const redis = await startRedis();
  for (const node of ['node-1', 'node-2']) {
    const server = new TestServer({ extraArgs: ['--broker', redis, '--node-id', node] });
    await server.start();
    world.nodes.push(server);
  }
  world.browser = await launch();
});

after(async () => {
  await world.browser?.close();
  for (const node of world.nodes) await node.stop();
  world.redis?.kill('SIGKILL');
  if (world.redisDir) rmSync(world.redisDir, { recursive: true, force: true });
});

test('two people on two nodes see each other, chat and make a video call', { skip }, async () => {
  const [one, two] = world.nodes;
  const ana = await newPage(world.browser, one);
  await registerViaUi(ana, 'ana', { themes: ['Cinema e Séries'] });
  const bia = await newPage(world.browser, two);
  await registerViaUi(bia, 'bia', { themes: ['Cinema e Séries'] });

  // The lobby on each node shows the person served by the other.
  await personIn(ana, 'Cinema e Séries', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(bia, 'Cinema e Séries', 'ana').and(bia.locator('[data-status=online]')).waitFor();

  // Chat both ways: Ana writes, the message is delivered and reaches Bia on the other node.
  await personIn(ana, 'Cinema e Séries', 'bia').getByRole('button', { name: 'Chat with bia' }).click();
  const anaChat = ana.locator('.chat-window[data-peer-id]').filter({ has: ana.getByRole('heading', { name: 'bia' }) });
  await anaChat.waitFor();
  await anaChat.getByRole('textbox').fill('Olá de node-1');
  await anaChat.getByRole('textbox').press('Enter');
  await anaChat.locator('.msg.mine[data-state=delivered]', { hasText: 'Olá de node-1' }).waitFor();
  await bia.locator('#conversation-list').getByRole('button', { name: /^ana · / }).click();
  const biaChat = bia.locator('.chat-window').filter({ has: bia.getByRole('heading', { name: 'ana' }) });
  await biaChat.locator('.msg.theirs .msg-text', { hasText: 'Olá de node-1' }).waitFor();
  await biaChat.getByRole('textbox').fill('Oi, aqui node-2');
  await biaChat.getByRole('textbox').press('Enter');
  await anaChat.locator('.msg.theirs .msg-text', { hasText: 'Oi, aqui node-2' }).waitFor();

  // A video call: the invitation rings on node 2, the answer and every ICE candidate cross.
  await personIn(ana, 'Cinema e Séries', 'bia').getByRole('button', { name: 'Video call bia' }).click();
  await bia.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  const [atAna, atBia] = await Promise.all([waitForMedia(ana), waitForMedia(bia)]);
  assert.equal(atAna[0].state, 'connected');
  assert.ok(atAna[0].framesDecoded > 0, 'ana decodes bia');
  assert.ok(atBia[0].framesDecoded > 0, 'bia decodes ana');
  // Behind the call view, each lobby has the other in a call (node 2's news, on node 1).
  await personIn(ana, 'Cinema e Séries', 'bia').and(ana.locator('[data-status=in_call]')).waitFor({ state: 'attached' });
  await personIn(bia, 'Cinema e Séries', 'ana').and(bia.locator('[data-status=in_call]')).waitFor({ state: 'attached' });
  await screenshot(ana, '25-two-nodes-call');

  // Hang-up on node 1 ends the call on node 2 too; both are online again.
  await ana.getByRole('button', { name: 'Hang up' }).click();
  await bia.locator('#call-view').waitFor({ state: 'hidden' });
  await personIn(bia, 'Cinema e Séries', 'ana').and(bia.locator('[data-status=online]')).waitFor();
});
