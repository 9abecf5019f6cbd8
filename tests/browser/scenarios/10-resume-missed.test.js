// Scenario 10: Ana has a chat open with Bia when her network drops (a TCP proxy between her
// page and the server resets her connections and refuses new ones). Bia (another device:
// client.js under Node) sends a thousand messages meanwhile: five times what the resume join
// holds. When Ana's page is back, her chat shows every one of them, in order, each once, and
// a message sent after the reconnect comes after them.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { TertuliaClient } from '../../../web/js/client.js';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup } from '../lib/browser.js';
import { startProxy } from '../lib/proxy.js';

/** How many messages Ana misses. */
const MISSED = 1000;

// Bia's device sends a thousand messages from one connection: more than the default frame
// rate allows in a few seconds.
const world = scenarioSetup({ extraArgs: ['--ws-rate-per-sec', '100000', '--ws-rate-burst', '100000'] });
let proxy;
let device;
after(async () => {
  device?.close();
  await proxy?.stop();
});

test('a page away for a thousand messages shows them all, in order, after it reconnects', async () => {
  const { server, browser } = world;
  // Bia is online from her other device, a client.js under Node.
  const bia = await server.user('bia', { themes: ['Idiomas'], capabilities: ['text'] });
  device = new TertuliaClient({
    url: server.wsUrl,
    createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${bia.token}` } }),
  });
  await device.connect();

  proxy = await startProxy(server.port);
  const ana = await newPage(browser, server, { url: proxy.url });
  await registerViaUi(ana, 'ana', { themes: ['Idiomas'] });
  await personIn(ana, 'Idiomas', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Idiomas', 'bia').getByRole('button', { name: 'Chat with bia' }).click();
  const chat = ana.locator('.chat-window').filter({ has: ana.getByRole('heading', { name: 'bia' }) });
  await chat.waitFor();
  const room = await chat.getAttribute('data-room');
  await device.joinRoom(room);
  await device.sendChat(room, 'antes do corte').delivered;
  await chat.locator('.msg-text', { hasText: 'antes do corte' }).waitFor();

  // Ana's network drops and stays down while Bia writes.
  assert.ok(proxy.cut({ downMs: 120_000 }) >= 1, 'the page had a connection through the proxy');
  await ana.locator('#conn-banner').waitFor({ state: 'visible' });
  const missed = Array.from({ length: MISSED }, (_, i) => `perdida ${i + 1}`);
  for (let i = 0; i < MISSED; i += 100) {
    await Promise.all(missed.slice(i, i + 100).map((text) => device.sendChat(room, text).delivered));
  }
  assert.equal(await chat.locator('.msg').count(), 1, 'nothing reached the page while it was away');

  // The network is back; Ana does not wait for the next retry.
  proxy.heal();
  await ana.locator('#conn-retry').click();
  await ana.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await chat.locator('.msg-text', { hasText: `perdida ${MISSED}` }).waitFor({ timeout: 30_000 });
  await device.sendChat(room, 'de volta').delivered;
  await chat.locator('.msg-text', { hasText: 'de volta' }).waitFor();

  const texts = await chat.locator('.msg .msg-text').allTextContents();
  assert.equal(texts.length, MISSED + 2, 'every message once');
  assert.equal(texts[0], 'antes do corte');
  assert.equal(texts[1], 'perdida 1');
  assert.equal(texts[MISSED], `perdida ${MISSED}`);
  assert.equal(texts.at(-1), 'de volta');
  assert.deepEqual(texts, ['antes do corte', ...missed, 'de volta']);
  const ids = await chat.locator('.msg').evaluateAll((lis) => lis.map((li) => Number(li.dataset.msgId)));
  assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'shown in msg_id order');
  await screenshot(ana, '10-resume-missed');
});
