// Scenario 23 (issue 20, point 5): someone who talks by video but not by voice is told, in
// the call, that the others cannot hear them (not just a greyed-out microphone), and the
// others see it on that person's tile; a chat open in a call stays beside the
// videos instead of covering one's own tile; who speaks is marked on their tile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, scenarioSetup, screenshot, waitForMedia } from '../lib/browser.js';

const world = scenarioSetup({ ringTimeoutMs: 30_000 });

/** Whether two boxes overlap. */
function overlap(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

test('a video-only caller is told nobody hears them, the others see why, and the chat does not cover the self-view', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Cinema e Séries'], capabilities: ['video', 'text'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Cinema e Séries'] });

  const biaRow = personIn(ana, 'Cinema e Séries', 'bia');
  await biaRow.and(ana.locator('[data-status=online]')).waitFor();
  await biaRow.getByRole('button', { name: 'Video call bia' }).click();
  await bia.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  await Promise.all([waitForMedia(ana), waitForMedia(bia)]);

  // Ana: a sentence, and a microphone button that says why it does nothing.
  await ana.locator('#call-notice', { hasText: 'No microphone available: the others see you but cannot hear you.' }).waitFor();
  const mic = ana.locator('[data-action=mute]');
  assert.equal(await mic.getAttribute('aria-label'), 'No microphone available');
  assert.equal(await mic.isDisabled(), true);
  await ana.locator('.tile.local .tile-note', { hasText: 'No microphone' }).waitFor();
  // Bia sees it on Ana's tile.
  await bia.locator('.tile.remote', { hasText: 'ana' }).locator('.tile-note', { hasText: 'No microphone' }).waitFor();

  // Bia's fake microphone beeps: her tile is marked speaking, on her screen and on Ana's;
  // Ana, without a microphone, never is.
  await ana.locator('.tile.remote[data-speaking=true]', { hasText: 'bia' }).waitFor();
  await bia.locator('.tile.local[data-speaking=true]').waitFor();
  assert.notEqual(await ana.locator('.tile.local').getAttribute('data-speaking'), 'true');
  assert.notEqual(await bia.locator('.tile.remote', { hasText: 'ana' }).getAttribute('data-speaking'), 'true');

  // A chat opened in the call sits beside the videos.
  await ana.locator('#call-controls').getByRole('button', { name: 'Open the chat' }).click();
  const chat = ana.locator('.chat-window').first();
  await chat.waitFor();
  const self = await ana.locator('.tile.local').boundingBox();
  const chatBox = await chat.boundingBox();
  assert.ok(!overlap(self, chatBox), `self-view ${JSON.stringify(self)} and chat ${JSON.stringify(chatBox)} do not overlap`);
  await screenshot(ana, 'call-no-microphone');
});
