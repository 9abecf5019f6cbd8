// Scenario 1: two people register in two browsers and see each other come online in the
// lobby, under their shared theme, with the right capability icons and actions; one closes
// the tab and the other sees them go offline. Along the way: a theme change pushed live, a
// server error shown inline in the form, the language switch, and logging back in with
// other themes chosen at login.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test('two users see each other online under their shared theme, then offline when a tab closes', async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Jogos', 'Música'], capabilities: ['video', 'audio', 'text'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Jogos', 'Livros'], capabilities: ['video', 'text'] });

  // Ana sees Bia, online, in the card of the theme they share (among "your themes").
  const biaAtAna = personIn(ana, 'Jogos', 'bia');
  await biaAtAna.and(ana.locator('[data-status=online]')).waitFor();
  assert.equal(await biaAtAna.locator('.status-text').textContent(), 'Online');
  assert.equal(await ana.locator('#sec-yours ~ .cards .theme-card[data-theme=Jogos]').count(), 1);
  // Her icons: video and text, no audio; the actions both of them can take.
  assert.equal(await biaAtAna.locator('.cap-video').count(), 1);
  assert.equal(await biaAtAna.locator('.cap-text').count(), 1);
  assert.equal(await biaAtAna.locator('.cap-audio').count(), 0);
  assert.equal(await biaAtAna.getByRole('button', { name: 'Video call bia' }).isEnabled(), true);
  assert.equal(await biaAtAna.getByRole('button', { name: 'Chat with bia' }).count(), 1);
  assert.equal(await biaAtAna.getByRole('button', { name: 'Voice call bia' }).count(), 0);
  // Bia is not in Ana's other theme's card.
  assert.equal(await personIn(ana, 'Música', 'bia').count(), 0);

  // Bia sees Ana the same way, with all three icons but no voice action (Bia has no audio).
  const anaAtBia = personIn(bia, 'Jogos', 'ana');
  await anaAtBia.and(bia.locator('[data-status=online]')).waitFor();
  assert.equal(await anaAtBia.locator('.cap').count(), 3);
  assert.equal(await anaAtBia.getByRole('button', { name: 'Voice call ana' }).count(), 0);
  assert.equal(await anaAtBia.getByRole('button', { name: 'Video call ana' }).count(), 1);

  await screenshot(ana, '01-lobby');

  // Portuguese with one switch (and back), the live lobby unchanged.
  await ana.getByRole('button', { name: 'Mudar para português' }).click();
  await ana.getByRole('heading', { name: 'Olá, ana' }).waitFor();
  assert.equal(await ana.locator('html').getAttribute('lang'), 'pt-BR');
  assert.equal(await biaAtAna.getByRole('button', { name: 'Chamada de vídeo com bia' }).count(), 1);
  await ana.getByRole('button', { name: 'Switch to English' }).click();
  await ana.getByRole('heading', { name: 'Hi, ana' }).waitFor();

  // Bia follows one more theme from her profile: Ana's lobby moves her there, live.
  await bia.getByRole('button', { name: 'Profile' }).click();
  const profile = bia.getByRole('dialog', { name: 'Your profile' });
  await profile.locator('input[name=themes][value="Música"]').check();
  await profile.getByRole('button', { name: 'Save' }).click();
  await profile.waitFor({ state: 'hidden' });
  await personIn(ana, 'Música', 'bia').waitFor();

  // A third visitor picks a taken nickname: the reason shows beside the field, in words of
  // the page's language (the server's code and field, translated).
  const late = await newPage(browser, server);
  await late.getByRole('tab', { name: 'Create account' }).click();
  const form = late.locator('#register-form');
  await form.getByLabel('Nickname').fill('ana');
  await form.getByLabel('Password').fill('another good password');
  await form.getByRole('button', { name: 'Create account' }).click();
  await form.locator('#register-nickname-error', { hasText: 'The nickname “ana” is taken. Choose another one.' }).waitFor();
  await late.context().close();

  // Bia closes her tab: Ana's lobby shows her offline, without a reload.
  await bia.context().close();
  await biaAtAna.and(ana.locator('[data-status=offline]')).waitFor();
  assert.equal(await biaAtAna.locator('.status-text').textContent(), 'Offline');
  assert.equal(await biaAtAna.getByRole('button', { name: 'Video call bia' }).isDisabled(), true);

  // Bia comes back, choosing other themes as she logs in: online again, under Tecnologia only.
  const back = await newPage(browser, server);
  const login = back.locator('#login-form');
  await login.getByLabel('Nickname').fill('bia');
  await login.getByLabel('Password').fill('correct horse battery');
  await login.getByText('Change my themes as I log in').click();
  for (const theme of ['Jogos', 'Livros', 'Música']) await login.locator(`input[name=themes][value="${theme}"]`).uncheck();
  await login.locator('input[name=themes][value="Tecnologia"]').check();
  await login.getByRole('button', { name: 'Log in' }).click();
  await back.getByRole('heading', { name: 'Hi, bia' }).waitFor();
  await personIn(ana, 'Tecnologia', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  assert.equal(await personIn(ana, 'Jogos', 'bia').count(), 0);
});
