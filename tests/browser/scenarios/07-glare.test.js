// Scenario 7: both people call each other at the same moment; exactly one call results,
// connected both ways, and neither is left with a stray "busy" or ringing screen.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, waitForMedia, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('two people calling each other at once end up in one call', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Basquete'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Basquete'] });
  const toBia = personIn(ana, 'Basquete', 'bia').getByRole('button', { name: 'Video call bia' });
  const toAna = personIn(bia, 'Basquete', 'ana').getByRole('button', { name: 'Video call ana' });
  await toBia.and(ana.locator(':enabled')).waitFor();
  await toAna.and(bia.locator(':enabled')).waitFor();

  await Promise.all([toBia.click(), toAna.click()]);

  const [atAna, atBia] = await Promise.all([waitForMedia(ana), waitForMedia(bia)]);
  // One connection each, both decoding.
  assert.equal(atAna.length, 1);
  assert.equal(atBia.length, 1);
  for (const page of [ana, bia]) {
    await page.locator('#call-view[data-phase=active]').waitFor();
    assert.equal(await page.locator('.tile.remote').count(), 1);
    assert.equal(await page.getByRole('alertdialog').isVisible(), false);
  }
  await screenshot(ana, '07-glare');

  // The server's log holds exactly one accepted call between them.
  const calls = await ana.evaluate(async () => (await fetch('/api/calls')).json());
  const list = Array.isArray(calls) ? calls : calls.calls || [];
  const accepted = list.filter((c) => ['accepted', 'ended'].includes(c.state));
  assert.equal(accepted.length, 1, JSON.stringify(list));
});
