// Audio-only people: a voice call with someone who has no camera capability connects and
// carries sound both ways, no camera is asked for, nobody is offered video with them, and
// they can open the chat beside the call.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, waitForMedia, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('a voice call with an audio-only user carries sound both ways without a camera', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Idiomas'] });
  const rui = await newPage(browser, server);
  await registerViaUi(rui, 'rui', { themes: ['Idiomas'], capabilities: ['audio', 'text'] });
  // Count what Rui's page asks of the devices.
  await rui.evaluate(() => {
    window.__asked = [];
    const md = navigator.mediaDevices;
    const original = md.getUserMedia.bind(md);
    md.getUserMedia = (constraints) => {
      window.__asked.push(constraints);
      return original(constraints);
    };
  });

  const ruiAtAna = personIn(ana, 'Idiomas', 'rui');
  await ruiAtAna.and(ana.locator('[data-status=online]')).waitFor();
  assert.deepEqual(await ruiAtAna.locator('.actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action)), ['audio', 'chat']);
  await ruiAtAna.getByRole('button', { name: 'Voice call rui' }).click();
  const prompt = rui.getByRole('alertdialog');
  await prompt.getByText('ana is calling you — voice call').waitFor();
  await prompt.getByRole('button', { name: 'Accept' }).click();

  const [atAna, atRui] = await Promise.all([waitForMedia(ana, { video: false }), waitForMedia(rui, { video: false })]);
  assert.ok(atAna[0].audioPackets > 0 && atRui[0].audioPackets > 0);
  assert.equal(atAna[0].framesDecoded, 0, 'a voice call sends no video');
  const asked = await rui.evaluate(() => window.__asked);
  assert.ok(asked.length > 0 && asked.every((c) => !c.video), JSON.stringify(asked));
  // A voice call has no camera button; the tiles show initials instead of video.
  assert.equal(await ana.getByRole('button', { name: 'Turn camera off' }).count(), 0);
  await ana.locator('.tile.remote[data-video=off][data-state=connected]', { hasText: 'rui' }).waitFor();

  // The chat beside the call.
  await rui.getByRole('button', { name: 'Open the chat' }).click();
  const chat = rui.locator('.chat-window').filter({ has: rui.getByRole('heading', { name: 'ana' }) });
  await chat.getByRole('textbox').fill('Está me ouvindo?');
  await chat.getByRole('textbox').press('Enter');
  await chat.locator('.msg.mine[data-state=delivered]').waitFor();
  await screenshot(rui, '08-audio-only');

  await ana.getByRole('button', { name: 'Hang up' }).click();
  await rui.getByText('ana ended the call.').first().waitFor();
});
