// Scenario 24 (issue 20): Tertulia installs as a web app: the page links a manifest with
// icons that load, registers a service worker that serves the app shell, and the page
// opens with the network gone — under the same Content-Security-Policy as before.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

/** The policy the server sends (src/startup.rs); the app must not need it loosened. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
  "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; " +
  "base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

test('the app has a manifest and a service worker, and opens offline', async () => {
  const { server, browser } = world;
  const page = await newPage(browser, server);
  const csp = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) csp.push(msg.text());
  });

  const manifestUrl = await page.locator('link[rel=manifest]').getAttribute('href');
  const manifest = await (await page.request.get(new URL(manifestUrl, server.url).href)).json();
  assert.equal(manifest.name, 'Tertulia');
  assert.equal(manifest.display, 'standalone');
  assert.equal(manifest.start_url, '/');
  const sizes = manifest.icons.map((i) => i.sizes);
  assert.ok(sizes.includes('192x192') && sizes.includes('512x512'), JSON.stringify(sizes));
  for (const icon of manifest.icons) {
    const res = await page.request.get(new URL(icon.src, server.url).href);
    assert.equal(res.status(), 200, icon.src);
    assert.equal(res.headers()['content-type'], icon.type, icon.src);
  }

  // The worker takes control and keeps the shell.
  await page.evaluate(() => navigator.serviceWorker.ready);
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).scope);
  assert.equal(scope, `${server.url}/`);
  await page.reload();
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  const response = await page.request.get(`${server.url}/`);
  assert.equal(response.headers()['content-security-policy'], CSP);

  // Offline: the page still opens (the shell from the worker's cache).
  await page.context().setOffline(true);
  await page.reload();
  await page.locator('#auth-view').waitFor({ state: 'visible' });
  await page.getByRole('tab', { name: 'Log in' }).waitFor();
  await page.context().setOffline(false);
  assert.deepEqual(csp, [], 'nothing was refused by the CSP');
});
