// A call that cannot connect says so. Ana (tertulia-a) and Bia (tertulia-b) have no path
// to each other and the server hands out no TURN server: the call is accepted, but no
// connection can ever come up. Instead of a call screen that waits forever, both pages
// say the call could not connect and why, offer the connection check page, and the call
// ends on the server for both (each shows the other online, not in a call, again).
// Run by net/run.sh inside tertulia-r (`ip netns exec`), never alone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot } from '../lib/browser.js';
import { startServer } from '../lib/server.js';
import { HOST_IP, NS_A, NS_B, SERVICES_IP, launchIn, routes } from './lib/netns.js';

/** The app gives up after 15 s (CONNECT_TIMEOUT_MS in call.js); allow for busy cores. */
const GIVE_UP_TIMEOUT_MS = 40_000;
const UNREACHABLE_TEXT = 'The call could not connect: no network path between you was found. The relay server (TURN) may be missing or unreachable.';

let server;
let browsers = [];
before(async () => {
  server = await startServer({ host: SERVICES_IP });
  browsers = [await launchIn(NS_A, server.url), await launchIn(NS_B, server.url)];
});
after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

test('a call that cannot connect tells both people why, offers the check page, and ends for both', async () => {
  assert.equal(routes(NS_A, HOST_IP[NS_B]), false, 'no path between the two');
  const ana = await newPage(browsers[0], server);
  await registerViaUi(ana, 'ana', { themes: ['Livros'] });
  const bia = await newPage(browsers[1], server);
  await registerViaUi(bia, 'bia', { themes: ['Livros'] });
  await personIn(ana, 'Livros', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Livros', 'bia').getByRole('button', { name: 'Video call bia' }).click();
  await bia.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  for (const page of [ana, bia]) await page.locator('#call-view[data-phase=active]').waitFor();

  for (const page of [ana, bia]) {
    await page.locator('#call-view[data-ended=unreachable]').waitFor({ timeout: GIVE_UP_TIMEOUT_MS });
    assert.equal(await page.locator('#call-state').textContent(), UNREACHABLE_TEXT);
    assert.equal(await page.locator('.tile.remote .tile-state').textContent(), 'Could not connect');
    const link = page.locator('#call-notice').getByRole('link', { name: 'Check your connection' });
    assert.equal(await link.getAttribute('href'), '/check.html');
    // Every connection of the call is closed: nothing keeps trying.
    const open = await page.evaluate(() => window.__pcs.filter((pc) => pc.connectionState !== 'closed').length);
    assert.equal(open, 0);
  }
  await screenshot(bia, 'net-05-call-unreachable');
  // Ended on the server for both: each sees the other available again.
  await personIn(ana, 'Livros', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(bia, 'Livros', 'ana').and(bia.locator('[data-status=online]')).waitFor();
  // The screen stays until closed, and then the lobby is back.
  await ana.getByRole('button', { name: 'Close' }).click();
  await ana.locator('#call-view').waitFor({ state: 'hidden' });
  // The link leads to the check page, which finds no TURN server.
  await bia.locator('#call-notice').getByRole('link', { name: 'Check your connection' }).click();
  await bia.locator('#check-verdict[data-verdict=unconfigured]').waitFor({ timeout: GIVE_UP_TIMEOUT_MS });
});
