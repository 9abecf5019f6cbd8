// Scenario 4: a declined call, a cancelled call and a missed call (short ring timeout),
// each shown to both people; the missed call stays listed for the callee after a reload.

import { test } from 'node:test';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup({ ringTimeoutMs: 3000 });

test('decline, cancel and missed are each shown to caller and callee', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Futebol'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Futebol'] });
  const callBia = async (kind = 'Video call bia') => {
    const row = personIn(ana, 'Futebol', 'bia');
    await row.and(ana.locator('[data-status=online]')).waitFor();
    await row.getByRole('button', { name: kind }).click();
  };
  const prompt = bia.getByRole('alertdialog');

  // Declined: Bia says no; Ana is told; Bia's prompt goes away.
  await callBia();
  await prompt.getByText('ana is calling you — video call').waitFor();
  await prompt.getByRole('button', { name: 'Decline' }).click();
  await prompt.waitFor({ state: 'hidden' });
  await ana.locator('#call-state', { hasText: 'bia declined the call.' }).waitFor();
  await ana.locator('#call-view').waitFor({ state: 'hidden' });

  // Cancelled: Ana gives up while it rings; Bia's prompt stops and says so.
  await callBia('Voice call bia');
  await prompt.getByText('ana is calling you — voice call').waitFor();
  await ana.locator('#call-controls').getByRole('button', { name: 'Cancel' }).click();
  await prompt.waitFor({ state: 'hidden' });
  await bia.locator('.toast', { hasText: 'ana cancelled the call.' }).waitFor();
  await ana.locator('#call-view').waitFor({ state: 'hidden' });

  // Missed: nobody answers within the ring timeout; both are told, and Bia's lobby lists it.
  await callBia();
  await prompt.getByText('ana is calling you — video call').waitFor();
  await ana.locator('#call-state', { hasText: 'bia did not answer.' }).waitFor();
  await prompt.waitFor({ state: 'hidden' });
  await bia.locator('.toast', { hasText: 'You missed a call from ana.' }).waitFor();
  const missed = bia.getByRole('region', { name: 'Missed calls' });
  await missed.getByText(/ana called you \(video\)/).waitFor();
  await screenshot(bia, '04-missed');

  // Next visit: still listed, with a way to call back.
  await bia.reload();
  await bia.getByRole('region', { name: 'Missed calls' }).getByText(/ana called you \(video\)/).waitFor();
  await bia.getByRole('region', { name: 'Missed calls' }).getByRole('button', { name: 'Call back' }).waitFor();
});
