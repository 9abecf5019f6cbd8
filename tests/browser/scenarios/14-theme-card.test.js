// Scenario 12: presence by subscription (protocol revision 1.2). Another theme's card shows
// how many are online there; opening it brings its people, live; closing it stops them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, personIn, registerViaUi, screenshot, scenarioSetup } from '../lib/browser.js';

const world = scenarioSetup();

test("opening another theme's card shows its people live, closing it hides them", async () => {
  const { server, browser } = world;
  const ana = await newPage(browser, server);
  await registerViaUi(ana, 'ana', { themes: ['Jogos'], capabilities: ['video', 'audio', 'text'] });
  const bia = await newPage(browser, server);
  await registerViaUi(bia, 'bia', { themes: ['Livros'], capabilities: ['video', 'audio', 'text'] });
  const carla = await newPage(browser, server);
  await registerViaUi(carla, 'carla', { themes: ['Livros'], capabilities: ['text'] });

  // Livros is not Ana's theme: its card counts both, and lists nobody until opened.
  const livros = ana.locator('.theme-card[data-theme=Livros]');
  await livros.locator('.theme-count').filter({ hasText: '2 online' }).waitFor();
  assert.equal(await livros.locator('.person').count(), 0);
  await livros.getByRole('button', { name: 'Show people' }).click();
  await personIn(ana, 'Livros', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  await personIn(ana, 'Livros', 'carla').and(ana.locator('[data-status=online]')).waitFor();
  await screenshot(ana, '14-theme-card');

  // Opened, it is live: Bia steps away, Ana sees it without a reload.
  await bia.locator('#my-status').selectOption('away');
  await personIn(ana, 'Livros', 'bia').and(ana.locator('[data-status=away]')).waitFor();

  // Carla leaves: the count follows.
  await carla.context().close();
  await livros.locator('.theme-count').filter({ hasText: '1 online' }).waitFor();

  // Closed again: its people are gone from the card; its count stays.
  await livros.getByRole('button', { name: 'Hide people' }).click();
  await livros.getByRole('button', { name: 'Show people' }).waitFor();
  assert.equal(await livros.locator('.person').count(), 0);
  await bia.locator('#my-status').selectOption('online');
  // Opened once more, it shows her as she is now.
  await livros.getByRole('button', { name: 'Show people' }).click();
  await personIn(ana, 'Livros', 'bia').and(ana.locator('[data-status=online]')).waitFor();
  assert.equal(await livros.locator('.theme-count').textContent(), '1 online · 2 people');
});
