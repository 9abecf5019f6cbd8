// Scenario 5: a third person is invited into a running call; all three decode video from
// both others (a mesh of three connections), shown as a grid.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, registerViaUi, screenshot, videoCall, waitForMedia, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('a third person invited into a call sees and is seen by both others', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Música'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Música'] });
  const caio = await newPage(browser, server);
  await registerViaUi(caio, 'caio', { themes: ['Música'] });

  await videoCall(ana, bia, 'Música', 'bia');

  // Ana adds Caio from inside the call.
  await ana.getByRole('button', { name: 'Add someone' }).click();
  const panel = ana.getByRole('dialog', { name: 'Invite someone into this call' });
  await panel.getByRole('button', { name: 'Add caio to the call' }).click();
  await ana.locator('#call-invites', { hasText: 'Ringing caio…' }).waitFor();
  const prompt = caio.getByRole('alertdialog');
  await prompt.getByText('ana invites you into a call').waitFor();
  await prompt.getByRole('button', { name: 'Accept' }).click();

  const all = await Promise.all([ana, bia, caio].map((p) => waitForMedia(p, { count: 2 })));
  for (const stats of all) {
    const live = stats.filter((s) => s.state === 'connected' && s.framesDecoded > 0);
    assert.equal(live.length, 2);
  }
  for (const page of [ana, bia, caio]) {
    await page.locator('#call-grid[data-count="3"]').waitFor();
    assert.equal(await page.locator('.tile.remote[data-state=connected]').count(), 2);
  }
  await screenshot(caio, '05-three-way');

  // Caio leaves; Ana and Bia go on together, and are told who left (call.left).
  await caio.getByRole('button', { name: 'Hang up' }).click();
  for (const page of [ana, bia]) {
    await page.locator('#toasts', { hasText: 'caio left the call.' }).waitFor();
    await page.locator('#call-grid[data-count="2"]').waitFor();
    assert.equal(await page.locator('.tile.remote', { hasText: 'caio' }).count(), 0);
    assert.equal(await page.locator('#call-view[data-phase=active]').count(), 1);
  }
});
