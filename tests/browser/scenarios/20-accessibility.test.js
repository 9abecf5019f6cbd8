// Scenario 20 (issue 20): axe-core finds no violation on any page and state a person goes
// through (start page, registration, a refused registration, lobby, profile, chat, call,
// connection check page, a phone-sized lobby); a refused registration says why in the
// page's language beside the field; on a phone the lobby shows people before one scrolls;
// one's own theme cards count oneself. The screenshots in docs/screenshots/ are copies of
// this scenario's and 21-23's artifacts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loginViaUi, newPage, personIn, registerViaUi, scenarioSetup, screenshot, videoCall } from '../lib/browser.js';
import { assertAccessible } from '../lib/axe.js';

const world = scenarioSetup();


test('a refused registration says why beside the field, in Portuguese, and announces it', async () => {
  const { server, browser } = world;
  const first = await newPage(browser, server);
  await registerViaUi(first, 'bruno', { themes: ['Jogos'] });

  const page = await newPage(browser, server, { locale: 'pt-BR' });
  await assertAccessible(page, 'the start page (pt-BR)');
  await page.getByRole('tab', { name: 'Criar conta' }).click();
  await assertAccessible(page, 'the registration form');
  const form = page.locator('#register-form');
  await form.getByLabel('Apelido').fill('Bruno');
  await form.getByLabel('Senha').fill('correct horse battery');
  await form.getByRole('button', { name: 'Criar conta' }).click();

  const nickname = form.getByLabel('Apelido');
  const error = page.locator('#register-nickname-error');
  await error.filter({ hasText: 'O apelido “Bruno” já está em uso. Escolha outro.' }).waitFor();
  // Beside the field, tied to it for screen readers, announced, and where focus went.
  assert.equal(await nickname.getAttribute('aria-invalid'), 'true');
  assert.match(await nickname.getAttribute('aria-describedby'), /register-nickname-error/);
  assert.equal(await error.getAttribute('aria-live'), 'polite');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'register-nickname');
  const [fieldBox, errorBox] = [await nickname.boundingBox(), await error.boundingBox()];
  assert.ok(Math.abs(errorBox.y - (fieldBox.y + fieldBox.height)) < 40, `the error sits right under the field: ${JSON.stringify({ fieldBox, errorBox })}`);
  assert.equal(await page.locator('#register-error').textContent(), '', 'not at the bottom of the form');
  await assertAccessible(page, 'a refused registration');
  await screenshot(page, 'registration-error-pt');

  // A too-short password: the password field says so, the nickname error is gone.
  await nickname.fill('carla');
  await form.getByLabel('Senha').fill('curta');
  await form.getByRole('button', { name: 'Criar conta' }).click();
  await page.locator('#register-password-error', { hasText: 'A senha precisa de pelo menos 8 caracteres.' }).waitFor();
  assert.equal(await error.textContent(), '');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'register-password');
});

test('every page and state passes axe, and the lobby works on a phone', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Livros', 'Idiomas'] });
  await assertAccessible(ana, 'the lobby');

  // One's own theme card counts oneself, and says so when nobody else follows it.
  const idiomas = ana.locator('.theme-card[data-theme=Idiomas]');
  await idiomas.locator('.theme-count', { hasText: '1 online · 1 person' }).waitFor();
  await idiomas.getByText('Only you so far').waitFor();
  // Descriptions in the page's language only.
  await ana.locator('.theme-card[data-theme=Livros] .theme-desc', { hasText: 'Book clubs, fiction, non-fiction and poetry.' }).waitFor();

  await ana.getByRole('button', { name: 'Profile' }).click();
  await ana.getByRole('dialog', { name: 'Your profile' }).waitFor();
  await assertAccessible(ana, 'the profile dialog');
  await ana.getByRole('button', { name: 'Cancel' }).click();

  // On a phone the lobby shows a person before one scrolls.
  const bia = await newPage(browser, server, { viewport: { width: 390, height: 844 } });
  await registerViaUi(bia, 'bia', { themes: ['Livros'] });
  const anaAtBia = personIn(bia, 'Livros', 'ana');
  await anaAtBia.waitFor();
  const box = await anaAtBia.boundingBox();
  assert.ok(box.y + box.height <= 844, `ana's row is on the first screen: ${JSON.stringify(box)}`);
  await assertAccessible(bia, 'the lobby on a phone');
  await screenshot(bia, 'lobby-phone');

  // A chat.
  await personIn(ana, 'Livros', 'bia').getByRole('button', { name: 'Chat with bia' }).click();
  const chat = ana.locator('.chat-window').first();
  await chat.waitFor();
  await chat.getByRole('textbox').fill('olá!');
  await chat.getByRole('textbox').press('Enter');
  await chat.getByText('olá!').waitFor();
  await assertAccessible(ana, 'a chat');
  await chat.getByRole('button', { name: /Close chat/ }).click();

  // A call, with the invite dialog open.
  const bia2 = await newPage(browser, server);
  await loginViaUi(bia2, 'bia');
  await videoCall(ana, bia2, 'Livros', 'bia');
  await assertAccessible(ana, 'a call');
  await ana.getByRole('button', { name: 'Add someone' }).click();
  await assertAccessible(ana, 'the invite dialog');
  await ana.getByRole('button', { name: 'Close' }).first().click();
  await ana.getByRole('button', { name: 'Camera, microphone and speaker' }).click();
  const mic = ana.getByLabel('Microphone', { exact: true });
  await mic.waitFor();
  await assertAccessible(ana, 'the device menu');
  // Another microphone is used at once (on every connection) and remembered for next time.
  const options = await mic.locator('option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  assert.ok(options.length >= 1, 'the fake microphones are listed');
  const chosen = options[options.length - 1];
  await mic.selectOption(chosen);
  await ana.waitForFunction((id) => localStorage.getItem('tertulia.device.audioinput') === id, chosen);
  await ana.waitForFunction(async (id) => {
    const senders = window.__pcs.filter((pc) => pc.connectionState !== 'closed').flatMap((pc) => pc.getSenders());
    const audio = senders.find((s) => s.track?.kind === 'audio');
    return audio?.track.getSettings().deviceId === id;
  }, chosen);
  await screenshot(ana, '20-call-devices');
  await ana.getByRole('button', { name: 'Hang up' }).click();

  // The connection check page.
  await ana.goto(`${server.url}/check.html`);
  await ana.locator('[data-verdict]').filter({ hasNot: ana.locator('[data-verdict=pending]') }).first().waitFor();
  await assertAccessible(ana, 'the connection check page');
});
