// Scenario 12: conversations (protocol revision 1.3). A direct message reaches the other
// person without an accept step and shows as unread in the conversation list of each of
// their tabs; reading it in one tab clears it in the other; the list survives a reload.
// Chat changes nobody's presence; from a conversation to a video call and back, with the
// chat kept beside the call; a third person brought in makes a group conversation, from
// which a video call reaches all three. An open conversation opens again after a reload.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, waitForMedia, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

/** The conversation list's entry for `room` on `page`. */
const entry = (page, room) => page.locator(`#conversation-list .conversation[data-room="${room}"]`);

test('a direct message arrives without an accept step and is unread in every tab of the other person', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Livros'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Livros'] });
  // Bia's second tab: the same login (same browser context).
  const bia2 = await bia.context().newPage();
  await bia2.goto(server.url);
  await bia2.locator('#lobby-heading').filter({ hasText: /\S/ }).waitFor();

  await personIn(ana, 'Livros', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Livros', 'bia').getByRole('button', { name: 'Chat with bia' }).click();
  const anaChat = ana.locator('.chat-window').filter({ has: ana.getByRole('heading', { name: 'bia' }) });
  await anaChat.getByRole('textbox').fill('Oi Bia, tudo bem?');
  await anaChat.getByRole('textbox').press('Enter');
  await anaChat.locator('.msg.mine[data-state=delivered]').waitFor();
  const room = await anaChat.getAttribute('data-room');
  // Nobody was "invited to open this conversation": there is no such line.
  assert.equal(await anaChat.locator('.chat-notice').isVisible(), false);

  // Both of Bia's tabs: a notice and an unread conversation, no prompt to accept.
  for (const page of [bia, bia2]) {
    await entry(page, room).and(page.locator('[data-unread="1"]')).waitFor();
    await page.locator('#conversation-list').getByRole('button', { name: /^ana · Oi Bia, tudo bem\? · .* · 1 unread$/ }).waitFor();
    await page.locator('.conv-notice', { hasText: 'New message from ana: Oi Bia, tudo bem?' }).waitFor();
    assert.equal(await page.getByRole('alertdialog').isVisible(), false, 'no invitation to accept');
    assert.equal(await page.locator('.chat-window').count(), 0, 'nothing opened by itself');
  }
  // Chat changed nobody's presence.
  assert.equal(await personIn(ana, 'Livros', 'bia').getAttribute('data-status'), 'online');
  assert.equal(await personIn(bia, 'Livros', 'ana').getAttribute('data-status'), 'online');
  await screenshot(bia2, '12-conversations-unread');

  // Bia reads it in the first tab: the second one is told.
  await entry(bia, room).getByRole('button').click();
  const biaChat = bia.locator('.chat-window').filter({ has: bia.getByRole('heading', { name: 'ana' }) });
  await biaChat.locator('.msg.theirs .msg-text', { hasText: 'Oi Bia, tudo bem?' }).waitFor();
  await entry(bia2, room).and(bia2.locator('[data-unread="0"]')).waitFor();
  // Ana's own message is never unread to her.
  await entry(ana, room).and(ana.locator('[data-unread="0"]')).waitFor();

  // A reload (or another device) finds the conversation, read, with its last message.
  await bia2.reload();
  await entry(bia2, room).and(bia2.locator('[data-unread="0"]')).waitFor();
  await entry(bia2, room).getByText('Oi Bia, tudo bem?').waitFor();

  // The conversation open in a tab opens again after that tab reloads.
  await bia.reload();
  await biaChat.locator('.msg.theirs .msg-text', { hasText: 'Oi Bia, tudo bem?' }).waitFor();

  // Bia answers; Ana, with the window open, reads it as it comes.
  await biaChat.getByRole('textbox').fill('Tudo ótimo!');
  await biaChat.getByRole('textbox').press('Enter');
  await anaChat.locator('.msg.theirs .msg-text', { hasText: 'Tudo ótimo!' }).waitFor();
  await entry(ana, room).and(ana.locator('[data-unread="0"]')).waitFor();
});

test('from a conversation to a video call and back, with the chat kept beside the call', async () => {
  const { server, browser } = world;
  const rui = await newPage(browser, server);
  await registerViaUi(rui, 'rui', { themes: ['Música'] });
  const lia = await newPage(browser, server);
  await registerViaUi(lia, 'lia', { themes: ['Música'] });
  const caio = await newPage(browser, server);
  await registerViaUi(caio, 'caio', { themes: ['Música'] });

  await personIn(rui, 'Música', 'lia').and(rui.locator('[data-status=online]')).waitFor();
  await personIn(rui, 'Música', 'lia').getByRole('button', { name: 'Chat with lia' }).click();
  const ruiChat = rui.locator('.chat-window').filter({ has: rui.getByRole('heading', { name: 'lia' }) });
  await ruiChat.getByRole('textbox').fill('Vamos por vídeo?');
  await ruiChat.getByRole('textbox').press('Enter');
  await lia.locator('.conv-notice').getByRole('button', { name: 'Open' }).click();
  const liaChat = lia.locator('.chat-window').filter({ has: lia.getByRole('heading', { name: 'rui' }) });
  await liaChat.locator('.msg.theirs', { hasText: 'Vamos por vídeo?' }).waitFor();

  // Both chats open: both still online to others, and the video call can be started.
  assert.equal(await personIn(caio, 'Música', 'rui').getAttribute('data-status'), 'online');
  assert.equal(await personIn(caio, 'Música', 'lia').getAttribute('data-status'), 'online');
  const call = ruiChat.getByRole('button', { name: 'Video call lia' });
  assert.equal(await call.isEnabled(), true);
  await call.click();
  await lia.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  await Promise.all([waitForMedia(rui), waitForMedia(lia)]);
  await personIn(caio, 'Música', 'rui').and(caio.locator('[data-status=in_call]')).waitFor();

  // The chat stays beside the call, and works during it.
  await ruiChat.waitFor({ state: 'visible' });
  await liaChat.getByRole('textbox').fill('Estou te vendo!');
  await liaChat.getByRole('textbox').press('Enter');
  await ruiChat.locator('.msg.theirs', { hasText: 'Estou te vendo!' }).waitFor();
  await screenshot(rui, '12-conversation-call');

  // Hanging up ends the call, not the conversation.
  await rui.getByRole('button', { name: 'Hang up' }).click();
  await rui.locator('#call-view').waitFor({ state: 'hidden' });
  await personIn(caio, 'Música', 'rui').and(caio.locator('[data-status=online]')).waitFor();
  for (const [chat, text] of [[ruiChat, 'Vamos por vídeo?'], [ruiChat, 'Estou te vendo!'], [liaChat, 'Estou te vendo!']]) {
    await chat.locator('.msg', { hasText: text }).waitFor();
  }
  await ruiChat.getByRole('textbox').fill('Até já');
  await ruiChat.getByRole('textbox').press('Enter');
  await liaChat.locator('.msg.theirs', { hasText: 'Até já' }).waitFor();

  // A third person brought in makes a group conversation, in everyone's list.
  await ruiChat.getByRole('button', { name: 'Add someone to this conversation' }).click();
  await ruiChat.getByRole('button', { name: 'Add caio' }).click();
  const group = rui.locator('.chat-window[data-kind=group]');
  await group.waitFor();
  await group.getByRole('textbox').fill('Oi, Caio!');
  await group.getByRole('textbox').press('Enter');
  for (const page of [lia, caio]) {
    await page.locator('#conversation-list .conversation[data-kind=group][data-unread="1"]').waitFor();
  }
  await caio.locator('#conversation-list .conversation[data-kind=group]').getByRole('button').click();
  await caio.locator('.chat-window[data-kind=group] .msg.theirs', { hasText: 'Oi, Caio!' }).waitFor();

  // A video call from the group rings one of them, then brings the other in.
  await group.getByRole('button', { name: 'Video call lia, caio' }).click();
  await lia.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  await caio.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  await Promise.all([waitForMedia(rui, { count: 2 }), waitForMedia(lia, { count: 2 }), waitForMedia(caio, { count: 2 })]);
  await group.waitFor({ state: 'visible' });
});
