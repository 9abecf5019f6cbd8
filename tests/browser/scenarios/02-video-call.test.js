// Scenario 2: Ana video-calls Bia; Bia accepts; both connections reach 'connected' and
// decode each other's video; a third person's lobby shows both in a call; an ICE restart
// started by both sides at once (crossing offers) is resolved by perfect negotiation and the
// video goes on; hanging up returns both to online there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, waitForMedia, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('a video call connects both ways, shows in_call to others, and hang-up frees both', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Cinema e Séries'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Cinema e Séries'] });
  const caio = await newPage(browser, server);
  await registerViaUi(caio, 'caio', { themes: ['Cinema e Séries'] });

  await personIn(ana, 'Cinema e Séries', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Cinema e Séries', 'bia').getByRole('button', { name: 'Video call bia' }).click();
  await ana.locator('#call-view').getByText('Calling bia…').waitFor();

  const prompt = bia.getByRole('alertdialog');
  await prompt.getByText('ana is calling you — video call').waitFor();
  // The prompt takes the keyboard focus: Enter answers.
  await prompt.getByRole('button', { name: 'Accept' }).and(bia.locator(':focus')).waitFor();
  await bia.keyboard.press('Enter');

  const [atAna, atBia] = await Promise.all([waitForMedia(ana), waitForMedia(bia)]);
  assert.equal(atAna[0].state, 'connected');
  assert.ok(atAna[0].framesDecoded > 0, 'ana decodes bia');
  assert.ok(atBia[0].framesDecoded > 0, 'bia decodes ana');
  // What each of them sees: the other's tile, connected, and a running timer.
  await ana.locator('.tile.remote[data-state=connected]', { hasText: 'bia' }).waitFor();
  await bia.locator('.tile.remote[data-state=connected]', { hasText: 'ana' }).waitFor();
  await ana.locator('#call-timer:not([hidden])').waitFor();
  await ana.locator('#call-heading', { hasText: 'Call with bia' }).waitFor();

  // Caio's lobby: both in a call.
  await personIn(caio, 'Cinema e Séries', 'ana').and(caio.locator('[data-status=in_call]')).waitFor();
  await personIn(caio, 'Cinema e Séries', 'bia').and(caio.locator('[data-status=in_call]')).waitFor();
  assert.equal(await personIn(caio, 'Cinema e Séries', 'ana').locator('.status-text').textContent(), 'In a call');
  await screenshot(ana, '02-call');
  await screenshot(caio, '02-lobby-in-call');

  // Both restart ICE at the same moment: the offers cross, the polite side yields, both end
  // up with new ICE credentials, connected, and still decoding.
  const ice = (page) => page.evaluate(() => {
    const pc = window.__pcs.find((p) => p.connectionState !== 'closed');
    return {
      remote: pc.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1],
      signaling: pc.signalingState,
      state: pc.connectionState,
    };
  });
  const before = [await ice(ana), await ice(bia)];
  await Promise.all([ana, bia].map((p) => p.evaluate(() => window.__pcs.find((pc) => pc.connectionState !== 'closed').restartIce())));
  const deadline = Date.now() + 20_000;
  let now;
  for (;;) {
    now = [await ice(ana), await ice(bia)];
    const done = now.every((x, i) => x.remote !== before[i].remote && x.signaling === 'stable' && x.state === 'connected');
    if (done) break;
    assert.ok(Date.now() < deadline, `ICE restart did not settle: ${JSON.stringify({ before, now })}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const framesBefore = (await waitForMedia(bia))[0].framesDecoded;
  for (;;) {
    const [stats] = await waitForMedia(bia);
    if (stats.framesDecoded > framesBefore + 10) break;
    assert.ok(Date.now() < deadline + 20_000, 'video stopped after the ICE restart');
    await new Promise((r) => setTimeout(r, 200));
  }

  // Mute and camera off are toggles a screen reader hears as pressed.
  const mute = ana.getByRole('button', { name: 'Mute microphone' });
  await mute.click();
  await ana.getByRole('button', { name: 'Unmute microphone' }).and(ana.locator('[aria-pressed=true]')).waitFor();
  await ana.getByRole('button', { name: 'Turn camera off' }).click();
  await ana.getByRole('button', { name: 'Turn camera on' }).waitFor();

  // Bia hangs up: both are back, online, in Caio's lobby; Ana is told.
  await bia.getByRole('button', { name: 'Hang up' }).click();
  await ana.getByText('bia ended the call.').first().waitFor();
  await personIn(caio, 'Cinema e Séries', 'ana').and(caio.locator('[data-status=online]')).waitFor();
  await personIn(caio, 'Cinema e Séries', 'bia').and(caio.locator('[data-status=online]')).waitFor();
  await ana.locator('#call-view').waitFor({ state: 'hidden' });
  // The camera was released: no live local track is left.
  const live = await ana.evaluate(() => window.__pcs.filter((pc) => pc.connectionState !== 'closed').length);
  assert.equal(live, 0);
});
