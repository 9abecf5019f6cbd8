// Debian's Chromium driven by playwright-core, launched exactly as shared/BROWSER-TESTS.md
// measured it to work for real WebRTC on these machines; and helpers that act as a user.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { REPO, startServer } from './server.js';

/** Where each scenario's screenshot goes (gitignored). */
export const ARTIFACTS = join(REPO, 'tests', 'browser', 'artifacts');

/** Chromium flags from BROWSER-TESTS.md; the fake media flags give every page a camera. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-dev-shm-usage',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
];

/** Generous: two cores are shared with everything else. */
export const UI_TIMEOUT_MS = 20_000;

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

/**
 * A fresh browser context (its own cookies: one user) with a page on the app (at `url`, by
 * default the server's own; e.g. a TcpProxy's to cut its network). Every RTCPeerConnection
 * the page makes is kept in `window.__pcs` so tests can read getStats().
 */
export async function newPage(browser, server, { locale = 'en-US', viewport = { width: 1280, height: 800 }, url = server.url } = {}) {
  const context = await browser.newContext({ locale, viewport, permissions: ['camera', 'microphone'] });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  await context.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.__pcs.push(this);
      }
    };
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/^Failed to load resource|^WebSocket connection to .* failed/.test(msg.text())) console.error(`[console] ${msg.text()}`);
  });
  await page.goto(url);
  return page;
}

/** Registers through the form (themes by name, capabilities as listed) and waits for the lobby. */
export async function registerViaUi(page, nickname, { themes = ['Jogos'], capabilities = ['video', 'audio', 'text'], password = 'correct horse battery' } = {}) {
  await page.getByRole('tab', { name: 'Create account' }).click();
  const form = page.locator('#register-form');
  await form.getByLabel('Nickname').fill(nickname);
  await form.getByLabel('Password').fill(password);
  for (const theme of themes) await form.locator(`input[name=themes][value="${theme}"]`).check();
  for (const cap of ['video', 'audio', 'text']) {
    const box = form.locator(`input[name=capabilities][value=${cap}]`);
    if (capabilities.includes(cap)) await box.check();
    else await box.uncheck();
  }
  await form.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });
  await waitConnected(page);
}

/** Logs in through the form and waits for the lobby. */
export async function loginViaUi(page, nickname, password = 'correct horse battery') {
  const form = page.locator('#login-form');
  await form.getByLabel('Nickname').fill(nickname);
  await form.getByLabel('Password').fill(password);
  await form.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });
  await waitConnected(page);
}

/** Waits until the lobby shows `nickname` (in any card) — the live directory arrived. */
export async function waitConnected(page) {
  await page.locator('#lobby-heading').filter({ hasText: /\S/ }).waitFor();
}

/** The row of `nickname` in the card of `theme`. */
export function personIn(page, theme, nickname) {
  return page.locator(`.theme-card[data-theme="${theme.replace(/[^\w-]/g, '_')}"] .person[data-nickname="${nickname}"]`);
}

/** Saves the scenario's screenshot in artifacts/. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/**
 * Waits until every RTCPeerConnection on the page that is not closed is 'connected' and
 * decodes video (`framesDecoded > 0`) — or audio packets for audio calls; resolves with
 * one {state, framesDecoded, audioPackets} per connection.
 */
export async function waitForMedia(page, { count = 1, video = true, timeoutMs = 30_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = [];
  while (Date.now() < deadline) {
    last = await page.evaluate(async () => {
      const out = [];
      for (const pc of window.__pcs) {
        if (pc.connectionState === 'closed') continue;
        let framesDecoded = 0;
        let audioPackets = 0;
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded || 0;
          if (s.type === 'inbound-rtp' && s.kind === 'audio') audioPackets += s.packetsReceived || 0;
        });
        out.push({ state: pc.connectionState, framesDecoded, audioPackets });
      }
      return out;
    });
    const ok = last.filter((p) => p.state === 'connected' && (video ? p.framesDecoded > 0 : p.audioPackets > 0));
    if (last.length >= count && ok.length >= count) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`media not flowing on ${count} connection(s): ${JSON.stringify(last)}`);
}

/**
 * `caller` video-calls `callee` (nickname `calleeName`) from the card of `theme` once the
 * callee shows online there; the callee accepts; resolves when both pages decode video.
 */
export async function videoCall(caller, callee, theme, calleeName) {
  await personIn(caller, theme, calleeName).and(caller.locator('[data-status=online]')).waitFor();
  await personIn(caller, theme, calleeName).getByRole('button', { name: `Video call ${calleeName}` }).click();
  await callee.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
  await Promise.all([waitForMedia(caller), waitForMedia(callee)]);
}

/**
 * One scenario file's world: a fresh server (with `serverOptions`) and a browser, started
 * before its tests and closed after them. Read `server` and `browser` inside a test.
 */
export function scenarioSetup(serverOptions) {
  const world = { server: undefined, browser: undefined };
  before(async () => {
    world.server = await startServer(serverOptions);
    world.browser = await launch();
  });
  after(async () => {
    await world.browser?.close();
    await world.server?.stop();
  });
  return world;
}
