// Scenario 21 (issue 20): in a three-way call one person shares their screen; the other
// two see it (a tile of its own, decoding the 1280x720 capture beside the 640x480 camera),
// the sharer sees it too; stopping it removes it everywhere, and the cameras go on. The
// screen travels as a second video track, negotiated by the calls' perfect negotiation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, registerViaUi, scenarioSetup, screenshot, videoCall, waitForMedia } from '../lib/browser.js';

const world = scenarioSetup();

/** The size of the video decoded in `page`'s screen tile of `name`, once it plays. */
async function screenSize(page, name) {
  const tile = page.locator('.tile.screen', { hasText: name });
  await tile.waitFor();
  const video = tile.locator('video');
  await page.waitForFunction((el) => el.videoWidth > 0 && el.currentTime > 0, await video.elementHandle());
  return video.evaluate((el) => ({ width: el.videoWidth, height: el.videoHeight }));
}

test('a screen shared in a three-way call is seen by the other two, and stopping it removes it', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Tecnologia'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Tecnologia'] });
  const caio = await newPage(browser, server);
  await registerViaUi(caio, 'caio', { themes: ['Tecnologia'] });

  await videoCall(ana, bia, 'Tecnologia', 'bia');
  await ana.getByRole('button', { name: 'Add someone' }).click();
  await ana.getByRole('button', { name: 'Add caio to the call' }).click();
  await caio.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  await Promise.all([ana, bia, caio].map((p) => waitForMedia(p, { count: 2 })));

  // Bia shares her screen (Chromium's fake capture: the whole 1280x720 screen).
  const share = bia.getByRole('button', { name: 'Share your screen' });
  await share.click();
  await bia.getByRole('button', { name: 'Stop sharing your screen' }).waitFor();
  assert.equal(await bia.locator('[data-action=share]').getAttribute('aria-pressed'), 'true');
  assert.deepEqual(await screenSize(bia, 'Your screen'), { width: 1280, height: 720 });
  for (const page of [ana, caio]) {
    assert.deepEqual(await screenSize(page, 'bia’s screen'), { width: 1280, height: 720 });
    // Her camera tile is still there, beside the screen.
    assert.equal(await page.locator('.tile.remote:not(.screen)', { hasText: 'bia' }).count(), 1);
    assert.equal(await page.locator('#call-view').getAttribute('data-sharing'), 'true');
  }
  await screenshot(caio, 'screen-share');

  // She stops: the screen tiles go everywhere; the call and its cameras go on.
  await bia.getByRole('button', { name: 'Stop sharing your screen' }).click();
  for (const page of [ana, bia, caio]) {
    await page.locator('.tile.screen').waitFor({ state: 'detached' });
    assert.equal(await page.locator('#call-view[data-phase=active]').count(), 1);
  }
  await Promise.all([ana, bia, caio].map((p) => waitForMedia(p, { count: 2 })));
  assert.equal(await bia.getByRole('button', { name: 'Share your screen' }).count(), 1);
});
