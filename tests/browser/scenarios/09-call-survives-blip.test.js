// Scenario 9: Ana and Bia are in a video call when Ana's network drops for a few seconds
// (a TCP proxy between her page and the server resets her connections and refuses new ones
// meanwhile; the WebRTC media goes peer to peer and is not cut). Ana's page reconnects and
// rejoins the call; neither page ends the call, the timer goes on, both decode each other's
// video again, and the call log holds one call. Then: hanging up while offline ends the call
// for the other side as soon as the page is back (not only when the server's grace ends).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, registerViaUi, screenshot, videoCall, waitForMedia, scenarioSetup } from '../lib/browser.js';
import { startProxy } from '../lib/proxy.js';

const world = scenarioSetup();
let proxy;
after(() => proxy?.stop());

/** Seconds shown by the call timer ("mm:ss" or "h:mm:ss"). */
async function timerSeconds(page) {
  const text = await page.locator('#call-timer').textContent();
  return text.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

/** Video frames decoded so far over the page's open connections. */
async function framesDecoded(page) {
  const stats = await waitForMedia(page);
  return stats.reduce((sum, s) => sum + s.framesDecoded, 0);
}

/** Waits until the page decodes `more` frames beyond what it had decoded when called. */
async function stillDecoding(page, more = 15) {
  const start = await framesDecoded(page);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const now = await framesDecoded(page);
    if (now > start + more) return now;
    assert.ok(Date.now() < deadline, `video stopped: ${start} → ${now} frames`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('a video call survives a network blip of one side', async () => {
  const { server, browser } = world;
  proxy = await startProxy(server.port);
  const ana = await newPage(browser, server, { url: proxy.url });
  await registerViaUi(ana, 'ana', { themes: ['Livros'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Livros'] });

  await videoCall(ana, bia, 'Livros', 'bia');
  await ana.locator('.tile.remote[data-state=connected]', { hasText: 'bia' }).waitFor();
  await bia.locator('.tile.remote[data-state=connected]', { hasText: 'ana' }).waitFor();
  await ana.locator('#call-timer:not([hidden])').waitFor();
  await Promise.all([stillDecoding(ana), stillDecoding(bia)]);
  const timerBefore = await timerSeconds(ana);

  // The blip: Ana's WebSocket (through the proxy) is reset and cannot reconnect for 3 s.
  assert.ok(proxy.cut({ downMs: 3000 }) >= 1, 'the page had a connection through the proxy');
  await ana.locator('#conn-banner').waitFor({ state: 'visible' });
  await ana.locator('#call-view[data-connection=reconnecting]').waitFor();
  // Bia's page keeps Ana's tile, waiting for her, and the call.
  await bia.locator('.tile.remote[data-state=away]', { hasText: 'ana' }).waitFor();
  await bia.locator('#call-state', { hasText: 'ana lost the connection' }).waitFor();
  await screenshot(bia, '09-waiting-for-ana');

  // Ana is back: both still in the call, connected to each other anew.
  await ana.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await bia.locator('.tile.remote[data-state=connected]', { hasText: 'ana' }).waitFor({ timeout: 30_000 });
  await ana.locator('.tile.remote[data-state=connected]', { hasText: 'bia' }).waitFor({ timeout: 30_000 });
  for (const page of [ana, bia]) {
    await page.locator('#call-view[data-phase=active][data-connection=connected]').waitFor();
    assert.equal(await page.locator('.tile.remote').count(), 1);
  }
  await Promise.all([stillDecoding(ana), stillDecoding(bia)]);
  // One live connection each (the old ones were replaced and closed).
  for (const page of [ana, bia]) {
    const open = await page.evaluate(() => window.__pcs.filter((pc) => pc.connectionState !== 'closed').length);
    assert.equal(open, 1);
  }
  // The timer went on from where it was.
  assert.ok((await timerSeconds(ana)) > timerBefore, 'the call timer continued');
  await screenshot(ana, '09-call-survives-blip');

  // One call in the log, still running; hanging up ends it for both.
  const log = async (page) => page.evaluate(async () => (await (await fetch('/api/calls')).json()).calls);
  const calls = await log(bia);
  assert.equal(calls.length, 1, JSON.stringify(calls));
  assert.equal(calls[0].state, 'accepted');
  await ana.getByRole('button', { name: 'Hang up' }).click();
  await bia.getByText('ana ended the call.').first().waitFor();
  const deadline = Date.now() + 10_000;
  let ended = await log(bia);
  while (ended[0].state !== 'ended') {
    assert.ok(Date.now() < deadline, JSON.stringify(ended));
    await new Promise((r) => setTimeout(r, 200));
    ended = await log(bia);
  }
  assert.equal(ended.length, 1, JSON.stringify(ended));
  await ana.context().close();
  await bia.context().close();
});

test('hanging up during a blip ends the call for the other side once back', async () => {
  const { server, browser } = world;
  const carla = await newPage(browser, server, { url: proxy.url });
  await registerViaUi(carla, 'carla', { themes: ['Livros'] });
  const davi = await newPage(browser, server);
  await registerViaUi(davi, 'davi', { themes: ['Livros'] });
  await videoCall(carla, davi, 'Livros', 'davi');

  proxy.cut({ downMs: 3000 });
  await carla.locator('#call-view[data-connection=reconnecting]').waitFor();
  await carla.getByRole('button', { name: 'Hang up' }).click();
  await carla.locator('#call-view').waitFor({ state: 'hidden' });
  // Davi hears it was a hang-up, not a connection that never came back.
  await davi.getByText('carla ended the call.').first().waitFor({ timeout: 30_000 });
  await davi.locator('#call-view').waitFor({ state: 'hidden' });
});
