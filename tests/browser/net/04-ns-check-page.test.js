// The connection check page (/check.html) in Chromium inside tertulia-a, against three
// servers in tertulia-r: TURN configured and reachable (coturn running), configured but
// unreachable (nothing listens on its port), and not configured. Each time the verdict is
// the right one in plain words, the candidate types found are listed, the camera and
// microphone work (fake devices) with a moving level meter, and the WebSocket round trip
// is measured. Reached from the profile dialog's link. In English and Portuguese.
// Run by net/run.sh inside tertulia-r (`ip netns exec`), never alone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, registerViaUi, screenshot } from '../lib/browser.js';
import { startServer } from '../lib/server.js';
import { startCoturn } from './lib/coturn.js';
import { NS_A, SERVICES_IP, launchIn, turnUrls } from './lib/netns.js';

const SECRET = 'turn-test-secret-04';
const TURN_PORT = 3478;
/** Nothing listens here: a TURN server that is configured but unreachable. */
const DEAD_PORT = 3479;
/** The check waits up to 10 s for ICE gathering; allow for busy cores. */
const VERDICT_TIMEOUT_MS = 30_000;

let coturn;
const servers = {};
let browser;
before(async () => {
  coturn = await startCoturn({ listen: [SERVICES_IP], relay: SERVICES_IP, port: TURN_PORT, secret: SECRET });
  servers.reachable = await startServer({ host: SERVICES_IP, extraArgs: ['--ice-urls', turnUrls(TURN_PORT), '--turn-secret', SECRET] });
  servers.unreachable = await startServer({ host: SERVICES_IP, extraArgs: ['--ice-urls', turnUrls(DEAD_PORT), '--turn-secret', SECRET] });
  servers.unconfigured = await startServer({ host: SERVICES_IP });
  browser = await launchIn(NS_A, Object.values(servers).map((s) => s.url).join(','));
});
after(async () => {
  await browser?.close();
  for (const s of Object.values(servers)) await s.stop();
  await coturn?.stop();
});

/** Registers on `server` and opens the check page from the profile dialog. */
async function openCheck(server, nickname) {
  const page = await newPage(browser, server);
  await registerViaUi(page, nickname);
  await page.locator('#profile-button').click();
  await page.getByRole('dialog').getByRole('link', { name: 'Check your connection' }).click();
  await page.getByRole('heading', { level: 1, name: 'Connection check' }).waitFor();
  return page;
}

/** The found/not found state of each candidate kind, once gathering is over. */
async function candidates(page) {
  await page.locator('#check-candidates li[data-found=pending]').first().waitFor({ state: 'detached', timeout: VERDICT_TIMEOUT_MS });
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#check-candidates li')].map((li) => [li.dataset.kind, li.dataset.found])));
}

/** Camera, microphone level and WebSocket round trip, common to every case. */
async function assertMediaAndWs(page) {
  await page.locator('#check-media-status[data-state=ok]').waitFor();
  assert.equal(await page.locator('#check-media-status').textContent(), 'Camera and microphone work.');
  // The fake microphone beeps: the meter moves.
  const meter = page.getByLabel('Microphone level');
  await page.waitForFunction(() => document.getElementById('check-level').value > 0, null, { timeout: 10_000 });
  assert.equal(await meter.evaluate((el) => el.tagName), 'METER');
  assert.ok(await page.evaluate(() => document.getElementById('check-video').videoWidth > 0), 'the camera preview shows');
  await page.locator('#check-ws[data-state=ok]').waitFor();
  const rtt = Number(await page.locator('#check-ws').getAttribute('data-rtt-ms'));
  assert.ok(rtt >= 1, `a round trip in ms: ${rtt}`);
  assert.match(await page.locator('#check-ws').textContent(), /^Round trip to the server: \d+ ms\.$/);
}

test('with TURN configured and reachable the check page says calls should work, in English and Portuguese', async () => {
  const page = await openCheck(servers.reachable, 'ana');
  const verdict = page.getByRole('status').filter({ has: page.getByRole('heading', { name: 'Result' }) });
  await page.locator('#check-verdict[data-verdict=ok]').waitFor({ timeout: VERDICT_TIMEOUT_MS });
  assert.equal(await page.locator('#check-verdict-text').textContent(), 'Calls with people outside your network should work.');
  assert.equal(await verdict.count(), 1, 'the verdict is a live status region');
  const found = await candidates(page);
  assert.equal(found.host, 'yes');
  assert.equal(found['relay-udp'], 'yes', JSON.stringify(found));
  assert.equal(found['relay-tcp'], 'yes', JSON.stringify(found));
  assert.equal(found['relay-tls'], 'no', 'no turns: URL was handed out');
  await assertMediaAndWs(page);
  await screenshot(page, 'net-04-check-ok');

  await page.getByRole('button', { name: 'Mudar para português' }).click();
  await page.getByRole('heading', { level: 1, name: 'Teste de conexão' }).waitFor();
  assert.equal(await page.locator('#check-verdict-text').textContent(), 'Chamadas com pessoas fora da sua rede devem funcionar.');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'pt-BR');
  await page.context().close();
});

test('with TURN configured but unreachable the check page says calls may fail and to tell the administrator', async () => {
  const page = await openCheck(servers.unreachable, 'bia');
  await page.locator('#check-verdict[data-verdict=unreachable]').waitFor({ timeout: VERDICT_TIMEOUT_MS });
  assert.equal(
    await page.locator('#check-verdict-text').textContent(),
    'Calls with people outside your network may fail: TURN is configured but not reachable from here. Tell your administrator.',
  );
  const found = await candidates(page);
  assert.equal(found.host, 'yes');
  for (const kind of ['relay-udp', 'relay-tcp', 'relay-tls']) assert.equal(found[kind], 'no', `${kind}: ${JSON.stringify(found)}`);
  assert.match(await page.locator('#check-ice-servers').textContent(), new RegExp(`turn:${SERVICES_IP.replace(/\./g, '\\.')}:${DEAD_PORT}`));
  await assertMediaAndWs(page);
  await screenshot(page, 'net-04-check-unreachable');
  await page.context().close();
});

test('with no TURN configured the check page says calls may fail because TURN is not configured', async () => {
  const page = await openCheck(servers.unconfigured, 'caio');
  await page.locator('#check-verdict[data-verdict=unconfigured]').waitFor({ timeout: VERDICT_TIMEOUT_MS });
  assert.equal(
    await page.locator('#check-verdict-text').textContent(),
    'Calls with people outside your network may fail: TURN is not configured. Tell your administrator.',
  );
  assert.equal(await page.locator('#check-ice-servers').textContent(), 'Tertulia hands out no STUN or TURN server.');
  const found = await candidates(page);
  assert.equal(found.host, 'yes');
  assert.equal(found['relay-udp'], 'no');
  await assertMediaAndWs(page);
  await page.context().close();
});
