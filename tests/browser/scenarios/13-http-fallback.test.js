// Scenario 12: a network where WebSockets do not get through (the page's WebSocket
// constructor is replaced by one that always fails). The app falls back to the HTTP
// transport (Server-Sent Events + POST) by itself and says so in the header; registering,
// the live lobby, chat, a reconnect with the missed messages resumed, and a video call all
// work over it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup, videoCall } from '../lib/browser.js';

const world = scenarioSetup();

/** A page whose WebSocket always fails, as behind a proxy that refuses upgrades. */
async function pageWithoutWebSocket(browser, server) {
  const page = await newPage(browser, server, { url: 'about:blank' });
  await page.context().addInitScript(() => {
    window.__wsAttempts = 0;
    window.WebSocket = class BlockedWebSocket {
      constructor(url) {
        window.__wsAttempts += 1;
        this.url = url;
        this.readyState = 0;
        setTimeout(() => {
          this.readyState = 3;
          this.onerror?.({});
          this.onclose?.({ code: 1006, reason: '' });
        }, 20);
      }
      send() {
        throw new Error('WebSocket blocked');
      }
      close() {}
    };
  });
  await page.goto(server.url);
  return page;
}

test('with WebSocket blocked the app falls back to HTTP: lobby, chat, resume and a video call work', async () => {
  const { server, browser } = world;
  const ana = await pageWithoutWebSocket(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Música'] });
  const bia = await pageWithoutWebSocket(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Música'] });

  // Both show the fallback, and it was a fallback: the WebSocket was tried first.
  for (const page of [ana, bia]) {
    await page.locator('#transport-badge[data-transport=http]', { hasText: 'HTTP' }).waitFor();
    assert.ok((await page.evaluate(() => window.__wsAttempts)) >= 1, 'a WebSocket was tried first');
  }
  // The lobby is live: Ana sees Bia arrive, and her status change.
  await personIn(ana, 'Música', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await bia.locator('#my-status').selectOption('busy');
  await personIn(ana, 'Música', 'bia').and(ana.locator('[data-status=busy]')).waitFor();
  await bia.locator('#my-status').selectOption('online');
  await personIn(ana, 'Música', 'bia').and(ana.locator('[data-status=online]')).waitFor();

  // Chat both ways: Ana writes, Bia finds the conversation in her list (no accept step).
  await personIn(ana, 'Música', 'bia').getByRole('button', { name: 'Chat with bia' }).click();
  const anaChat = ana.locator('.chat-window').filter({ has: ana.getByRole('heading', { name: 'bia' }) });
  const biaChat = bia.locator('.chat-window').filter({ has: bia.getByRole('heading', { name: 'ana' }) });
  await anaChat.waitFor();
  const say = async (chat, text) => {
    await chat.getByRole('textbox').fill(text);
    await chat.getByRole('textbox').press('Enter');
  };
  await say(anaChat, 'olá por HTTP');
  await anaChat.locator('.msg.mine[data-state=delivered]', { hasText: 'olá por HTTP' }).waitFor();
  await bia.locator('#conversation-list').getByRole('button', { name: /^ana · olá por HTTP/ }).click();
  await biaChat.locator('.msg-text', { hasText: 'olá por HTTP' }).waitFor();
  await say(biaChat, 'recebido');
  await anaChat.locator('.msg-text', { hasText: 'recebido' }).waitFor();

  // The server goes away and comes back: the pages reconnect over HTTP again and what was
  // written meanwhile arrives exactly once.
  await server.kill();
  await ana.locator('#conn-banner').waitFor({ state: 'visible' });
  await say(anaChat, 'durante o corte');
  await anaChat.locator('.msg[data-state=pending]').waitFor();
  await server.start();
  await ana.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await bia.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await biaChat.locator('.msg-text', { hasText: 'durante o corte' }).waitFor();
  await anaChat.locator('.msg[data-state=pending]').waitFor({ state: 'detached' });
  const expected = ['olá por HTTP', 'recebido', 'durante o corte'];
  assert.deepEqual(await biaChat.locator('.msg-text').allTextContents(), expected);
  assert.deepEqual(await anaChat.locator('.msg-text').allTextContents(), expected);
  await ana.locator('#transport-badge[data-transport=http]').waitFor();
  await screenshot(ana, '13-http-chat');

  // A video call, its signaling over the event stream and posts.
  await videoCall(ana, bia, 'Música', 'bia');
  await screenshot(ana, '13-http-call');
  await bia.getByRole('button', { name: 'Hang up' }).click();
  await ana.getByText('bia ended the call.').first().waitFor();
});
