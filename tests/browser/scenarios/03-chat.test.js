// Scenario 3: a chat-only user. No call action is offered to or from them; chat works both
// ways without an invitation to accept (pending → delivered, typing, text shown as text);
// after a reload the history is there, and scrolling up loads the older pages.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { TertuliaClient } from '../../../web/js/client.js';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('a chat-only user chats both ways without call actions, and the history survives a reload', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Livros'], capabilities: ['video', 'audio', 'text'] });
  // Teo is on a phone-sized screen.
  const teo = await newPage(browser, server, { viewport: { width: 390, height: 844 } });
  await registerViaUi(teo, 'teo', { themes: ['Livros'], capabilities: ['text'] });

  const teoAtAna = personIn(ana, 'Livros', 'teo');
  await teoAtAna.and(ana.locator('[data-status=online]')).waitFor();
  const anaAtTeo = personIn(teo, 'Livros', 'ana');
  await anaAtTeo.and(teo.locator('[data-status=online]')).waitFor();
  // Only chat, both ways.
  assert.deepEqual(await teoAtAna.locator('.actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action)), ['chat']);
  assert.deepEqual(await anaAtTeo.locator('.actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action)), ['chat']);
  assert.deepEqual(await teoAtAna.locator('.cap').evaluateAll((cs) => cs.map((c) => c.dataset.cap)), ['text']);

  // Ana opens the conversation and writes at once (markup is shown as text, never
  // interpreted); it is delivered. Teo is not asked to accept anything: the message reaches
  // him with a notice, and the conversation is in his list; he opens it from there.
  await teoAtAna.getByRole('button', { name: 'Chat with teo' }).click();
  const anaChat = ana.locator('.chat-window[data-peer-id]').filter({ has: ana.getByRole('heading', { name: 'teo' }) });
  await anaChat.waitFor();
  // A new conversation has no older messages to load.
  await anaChat.getByText('This is the beginning of your conversation.').waitFor();
  assert.equal(await anaChat.getByRole('button', { name: 'Load older messages' }).isVisible(), false);
  const tricky = 'Olá, Teo! <b>não é negrito</b> <img src=x onerror=alert(1)>';
  await anaChat.getByRole('textbox').fill(tricky);
  await anaChat.getByRole('textbox').press('Enter');
  await anaChat.locator('.msg.mine[data-state=delivered] .msg-text', { hasText: 'Olá, Teo!' }).waitFor();
  await teo.locator('.conv-notice', { hasText: 'New message from ana' }).waitFor();
  assert.equal(await teo.getByRole('alertdialog').isVisible(), false, 'no prompt to accept');
  await teo.locator('#conversation-list .conversation[data-unread="1"]').waitFor();
  await teo.locator('#conversation-list').getByRole('button', { name: /^ana · .* · 1 unread$/ }).click();
  const teoChat = teo.locator('.chat-window').filter({ has: teo.getByRole('heading', { name: 'ana' }) });
  await teoChat.waitFor();
  await teo.locator('#conversation-list .conversation[data-unread="0"]').waitFor();
  const atTeo = teoChat.locator('.msg.theirs .msg-text');
  await atTeo.filter({ hasText: 'Olá, Teo!' }).waitFor();
  assert.equal(await atTeo.first().textContent(), tricky);
  assert.equal(await teoChat.locator('.msg b, .msg img').count(), 0);

  // Teo types: Ana sees it; then his answer arrives.
  await teoChat.getByRole('textbox').pressSequentially('Oi Ana', { delay: 30 });
  await anaChat.getByText('teo is typing…').waitFor();
  await teoChat.getByRole('textbox').press('Enter');
  await anaChat.locator('.msg.theirs .msg-text', { hasText: 'Oi Ana' }).waitFor();
  await teoChat.locator('.msg.mine[data-state=delivered]', { hasText: 'Oi Ana' }).waitFor();
  await screenshot(ana, '03-chat');

  // Teo's other device (client.js under Node, as any other front end would use it) sends a
  // long run of messages: more than the page a chat opens with.
  const room = await anaChat.getAttribute('data-room');
  const login = await (await fetch(`${server.url}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ nickname: 'teo', password: 'correct horse battery' }),
  })).json();
  const device = new TertuliaClient({
    url: server.wsUrl,
    createSocket: (url) => new WebSocket(url, { headers: { Authorization: `Bearer ${login.token}` } }),
  });
  await device.connect();
  await device.joinRoom(room);
  const seeded = Array.from({ length: 60 }, (_, i) => `mensagem ${i + 1}`);
  for (const text of seeded) await device.sendChat(room, text).delivered;
  device.close();

  // Ana reloads: reopening the chat shows the latest page; scrolling up loads the rest, in
  // order, each message once, down to the beginning of the conversation.
  await ana.reload();
  await personIn(ana, 'Livros', 'teo').getByRole('button', { name: 'Chat with teo' }).click();
  const reopened = ana.locator('.chat-window').filter({ has: ana.getByRole('heading', { name: 'teo' }) });
  await reopened.locator('.msg .msg-text', { hasText: 'mensagem 60' }).waitFor();
  assert.ok((await reopened.locator('.msg').count()) < 62, 'opens with the latest page only');
  await reopened.locator('.chat-scroll').evaluate((el) => {
    el.scrollTop = 0;
  });
  await reopened.getByText('This is the beginning of your conversation.').waitFor();
  const texts = await reopened.locator('.msg .msg-text').allTextContents();
  assert.deepEqual(texts, [tricky, 'Oi Ana', ...seeded]);
});
