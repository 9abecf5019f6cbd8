// Scenario 11: cross-site request forgery from the same site. A logged-in admin visits a
// page on another port of the same host (the same *site*, so the SameSite=Strict session
// cookie still goes along): its auto-submitting forms and no-cors fetches try to ban and
// unban a user, log the admin out and create a theme. Every one is refused (403 forbidden,
// nothing changed); the app itself, from its own origin, still can.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { freePort } from '../lib/server.js';
import { loginViaUi, newPage, screenshot, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

/** A site on another port of 127.0.0.1 serving `pages` (path → HTML). */
async function otherPortSite(pages) {
  const port = await freePort();
  const server = createServer((req, res) => {
    const html = pages[req.url];
    res.writeHead(html ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html || 'not here');
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

/** A page whose form posts itself to `action` on load (`fields`: hidden inputs). */
function autoForm(action, { fields = {}, enctype = 'application/x-www-form-urlencoded' } = {}) {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name='${name}' value='${value}'>`)
    .join('');
  return `<!doctype html><title>Win a prize</title>
<form id="f" method="POST" action="${action}" enctype="${enctype}">${inputs}</form>
<script>document.getElementById('f').submit();</script>`;
}

/** A page that fires a credentialed no-cors POST at `action` and reports when it is done. */
function noCorsPost(action) {
  return `<!doctype html><title>Nothing to see</title><script>
window.done = fetch(${JSON.stringify(action)}, { method: 'POST', mode: 'no-cors', credentials: 'include' })
  .then(() => 'sent', (e) => 'failed: ' + e);
</script>`;
}

test('a page on another port of the same host cannot ban, unban, log out or change anything; the app itself can', async () => {
  const { server, browser } = world;
  const victim = await server.user('vitima');
  const boss = await server.user('chefe');
  server.makeAdmin('chefe');
  const api = async (method, path) => {
    const res = await fetch(`${server.url}${path}`, { method, headers: { Authorization: `Bearer ${boss.token}` } });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const victimBanned = async () => (await api('GET', `/api/admin/users/${victim.user.id}`)).body.user.banned;

  const ban = `${server.url}/api/admin/users/${victim.user.id}/ban`;
  const unban = `${server.url}/api/admin/users/${victim.user.id}/unban`;
  const site = await otherPortSite({
    '/ban': autoForm(ban),
    '/unban': autoForm(unban),
    '/logout': autoForm(`${server.url}/api/logout`),
    // A text/plain form shaped to read as JSON (the classic trick against JSON APIs).
    '/theme': autoForm(`${server.url}/api/admin/themes`, {
      fields: { '{"name":"Pwned","description":"x","pad":"': '"}' },
      enctype: 'text/plain',
    }),
    '/fetch-ban': noCorsPost(ban),
  });
  try {
    // The admin logs in to the app as usual: the browser now holds the session cookie.
    const page = await newPage(browser, server);
    await loginViaUi(page, 'chefe');

    // The same browser opens the other site's pages.
    const evil = await page.context().newPage();
    const refusedAt = async (path) => {
      await Promise.all([evil.waitForURL(`${server.url}/**`), evil.goto(`${site.url}${path}`)]);
      const text = await evil.locator('body').textContent();
      // Refused as forbidden, not merely unauthenticated: the cookie did go along.
      assert.match(text, /"code":"forbidden"/, `${path} answered: ${text}`);
    };

    await refusedAt('/ban');
    assert.equal(await victimBanned(), false, 'a forged ban must not land');

    assert.equal((await api('POST', `/api/admin/users/${victim.user.id}/ban`)).status, 200);
    await refusedAt('/unban');
    assert.equal(await victimBanned(), true, 'a forged unban must not land');
    assert.equal((await api('POST', `/api/admin/users/${victim.user.id}/unban`)).status, 200);

    await refusedAt('/theme');
    const themes = await (await fetch(`${server.url}/api/themes`)).json();
    assert.ok(!JSON.stringify(themes).includes('Pwned'), 'no theme created');

    await evil.goto(`${site.url}/fetch-ban`);
    assert.equal(await evil.evaluate(() => window.done), 'sent');
    assert.equal(await victimBanned(), false, 'a forged no-cors fetch must not land');

    await refusedAt('/logout');
    await screenshot(evil, '11-csrf-refused');
    // The admin is still logged in, in the app's own page.
    const me = await page.evaluate(async () => (await fetch('/api/me')).status);
    assert.equal(me, 200, 'the forged logout must not end the session');

    // The app itself, from its own origin and with the same cookie, still acts.
    const banned = await page.evaluate(async (path) => (await fetch(path, { method: 'POST' })).status, `/api/admin/users/${victim.user.id}/ban`);
    assert.equal(banned, 200);
    assert.equal(await victimBanned(), true);
    const out = await page.evaluate(async () => (await fetch('/api/logout', { method: 'POST' })).status);
    assert.equal(out, 204);
    assert.equal(await page.evaluate(async () => (await fetch('/api/me')).status), 401);
  } finally {
    await site.close();
  }
});
