// Scenario 22 (issue 20): a call to someone whose tab is hidden shows a system
// notification and counts in the tab's title; clicking the notification brings the tab
// forward, looking at the tab clears the count. Permission is never asked on load, only
// when the person first does something that calls for it (starting a call).
//
// Headless Chromium draws no notification: an init script wraps window.Notification to
// record what the page shows (and a click on it), and makes `document.hidden` settable,
// as a tab in the background would have it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, scenarioSetup, screenshot } from '../lib/browser.js';

// Calls ring long enough for the steps between ringing and answering.
const world = scenarioSetup({ ringTimeoutMs: 30_000 });

/**
 * Records notifications and permission requests; `window.__setHidden(bool)` hides the tab.
 * `permission`: what Notification.permission says before anyone answered (headless
 * Chromium says 'denied' where a desktop browser says 'default').
 */
function recordNotifications({ permission } = {}) {
  const Native = window.Notification;
  window.__notifications = [];
  window.__permissionAsked = 0;
  window.__focused = 0;
  class Recorded extends Native {
    constructor(title, options) {
      super(title, options);
      window.__notifications.push({ title, body: options?.body, note: this });
    }
  }
  Recorded.requestPermission = () => {
    window.__permissionAsked += 1;
    return Promise.resolve(Native.permission);
  };
  Object.defineProperty(Recorded, 'permission', { get: () => (Native.permission === 'granted' ? 'granted' : permission || Native.permission) });
  window.Notification = Recorded;
  let hidden = false;
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
  const nativeFocus = window.focus.bind(window);
  window.focus = () => {
    window.__focused += 1;
    nativeFocus();
  };
}

test('a call to a hidden tab shows a notification and a count in the title; clicking it focuses the tab', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await ana.context().addInitScript(recordNotifications, { permission: 'default' });
  await ana.reload();
  await registerViaUi(ana, 'ana', { themes: ['Música'] });
  const bia = await newPage(browser, server);
  await bia.context().grantPermissions(['notifications']);
  await bia.context().addInitScript(recordNotifications, {});
  await bia.reload();
  await registerViaUi(bia, 'bia', { themes: ['Música'] });

  // Nobody was asked anything on load.
  assert.equal(await ana.evaluate(() => window.__permissionAsked), 0);
  assert.equal(await ana.evaluate(() => Notification.permission), 'default');

  await bia.evaluate(() => window.__setHidden(true));
  await personIn(ana, 'Música', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Música', 'bia').getByRole('button', { name: 'Video call bia' }).click();
  // Ana's click on "call" is the moment to ask her (once).
  await ana.waitForFunction(() => window.__permissionAsked === 1);

  await bia.waitForFunction(() => window.__notifications.length === 1);
  const shown = await bia.evaluate(() => window.__notifications.map(({ title, body }) => ({ title, body })));
  assert.deepEqual(shown, [{ title: 'ana is calling you', body: 'ana is calling you — video call' }]);
  await bia.waitForFunction(() => document.title.startsWith('(1) '));
  assert.match(await bia.title(), /^\(1\) ☎ ana is calling you/);

  // A click on the notification brings the tab forward; looking at it clears the count.
  await bia.evaluate(() => window.__notifications[0].note.onclick());
  assert.equal(await bia.evaluate(() => window.__focused), 1);
  await bia.evaluate(() => window.__setHidden(false));
  await bia.waitForFunction(() => !/^\(\d+\) /.test(document.title));
  await bia.getByRole('alertdialog').getByText('ana is calling you — video call').waitFor();
  await screenshot(bia, 'incoming-call');
  await bia.getByRole('alertdialog').getByRole('button', { name: 'Decline' }).click();

  // Point 4 of the issue: the caller's screen says what happened and can be closed at once.
  await ana.locator('#call-heading', { hasText: 'bia declined the call.' }).waitFor();
  await ana.locator('#call-controls').getByRole('button', { name: 'Close' }).click();
  await ana.locator('#call-view').waitFor({ state: 'hidden' });

  // A tab in view is not notified.
  await personIn(ana, 'Música', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Música', 'bia').getByRole('button', { name: 'Video call bia' }).click();
  await bia.getByRole('alertdialog').getByText('ana is calling you').waitFor();
  assert.equal(await bia.evaluate(() => window.__notifications.length), 1);
  assert.equal(await ana.evaluate(() => window.__permissionAsked), 1, 'asked once only');
});
