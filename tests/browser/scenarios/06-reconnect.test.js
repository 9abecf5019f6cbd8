// Scenario 6: the WebSocket is cut mid-chat (the server process is killed and started
// again on the same port and database): the pages reconnect, and the messages sent during
// the gap arrive exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('after a server restart the chat resumes and gap messages arrive exactly once', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Idiomas'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Idiomas'] });

  await personIn(ana, 'Idiomas', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Idiomas', 'bia').getByRole('button', { name: 'Chat with bia' }).click();
  const anaChat = ana.locator('.chat-window').filter({ has: ana.getByRole('heading', { name: 'bia' }) });
  const biaChat = bia.locator('.chat-window').filter({ has: bia.getByRole('heading', { name: 'ana' }) });

  const say = async (chat, text) => {
    await chat.getByRole('textbox').fill(text);
    await chat.getByRole('textbox').press('Enter');
  };
  // Ana writes; Bia opens the conversation from her list (no invitation to accept).
  await say(anaChat, 'antes do corte');
  await bia.locator('#conversation-list .conversation').getByRole('button').click();
  await biaChat.locator('.msg-text', { hasText: 'antes do corte' }).waitFor();

  // Cut: both pages show they are reconnecting.
  await server.kill();
  await ana.locator('#conn-banner').waitFor({ state: 'visible' });
  await bia.locator('#conn-banner').waitFor({ state: 'visible' });

  // Ana writes during the gap: pending, not lost.
  await say(anaChat, 'durante o corte 1');
  await say(anaChat, 'durante o corte 2');
  await anaChat.locator('.msg[data-state=pending]').nth(1).waitFor();
  await screenshot(ana, '06-reconnecting');

  await server.start();
  await ana.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await bia.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await biaChat.locator('.msg-text', { hasText: 'durante o corte 2' }).waitFor();
  await anaChat.locator('.msg[data-state=pending]').waitFor({ state: 'detached' });
  // A chat after the resume works both ways too.
  await say(biaChat, 'voltou!');
  await anaChat.locator('.msg-text', { hasText: 'voltou!' }).waitFor();

  const expected = ['antes do corte', 'durante o corte 1', 'durante o corte 2', 'voltou!'];
  assert.deepEqual(await biaChat.locator('.msg-text').allTextContents(), expected);
  assert.deepEqual(await anaChat.locator('.msg-text').allTextContents(), expected);
  // Presence resumed: each sees the other online again.
  await personIn(ana, 'Idiomas', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(bia, 'Idiomas', 'ana').and(bia.locator('[data-status=online]')).waitFor();
});
