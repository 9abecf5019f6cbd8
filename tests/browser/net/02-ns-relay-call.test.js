// Calls through the TURN relay between two networks that cannot reach each other (Linux
// network namespaces: see netns.sh). Ana's Chromium lives in tertulia-a, Bia's in
// tertulia-b; each reaches only 10.213.9.1, where the Tertulia server and coturn listen.
// coturn refuses to relay to the browsers' own private addresses (`denied-peer-ip`, as a
// deployment should), so the only working pair is relay to relay. The app's ICE policy is
// its default ("all"): the relay wins because no direct path exists.
// Run by net/run.sh inside tertulia-r (`ip netns exec`), never alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, registerViaUi, screenshot, videoCall } from '../lib/browser.js';
import { HOST_IP, NS_A, NS_B, SERVICES_IP, allowTurnUdp, dropTurnUdp, relayWorld, routes, selectedPairs } from './lib/netns.js';

const SECRET = 'turn-test-secret-02';
const TURN_PORT = 3478;

const world = relayWorld({ port: TURN_PORT, secret: SECRET });

/** Ana (in tertulia-a) and Bia (in tertulia-b) in a video call; resolves with both pages. */
async function callAcross(anaName, biaName, theme) {
  const ana = await newPage(world.browsers[0], world.server);
  await registerViaUi(ana, anaName, { themes: [theme] });
  const bia = await newPage(world.browsers[1], world.server);
  await registerViaUi(bia, biaName, { themes: [theme] });
  await videoCall(ana, bia, theme, biaName);
  return [ana, bia];
}

test('the networks cannot reach each other, only the services', () => {
  assert.equal(routes(NS_A, HOST_IP[NS_B]), false, 'no route from a to b');
  assert.equal(routes(NS_B, HOST_IP[NS_A]), false, 'no route from b to a');
  assert.equal(routes(NS_A, SERVICES_IP), true);
  assert.equal(routes(NS_B, SERVICES_IP), true);
});

test('a video call between two networks that cannot reach each other flows through the TURN relay', async () => {
  const [ana, bia] = await callAcross('ana', 'bia', 'Livros');
  for (const [name, page] of [['ana', ana], ['bia', bia]]) {
    const pairs = await selectedPairs(page);
    assert.equal(pairs.length, 1, `${name}: one connection`);
    const [pair] = pairs;
    assert.equal(pair.state, 'connected');
    assert.equal(pair.local?.type, 'relay', `${name}'s selected pair is a relay pair: ${JSON.stringify(pair)}`);
    assert.equal(pair.remote?.type, 'relay', `${name}'s peer is reached through its relay: ${JSON.stringify(pair)}`);
    assert.equal(pair.local.address, SERVICES_IP, 'the relay address is coturn’s');
  }
  await screenshot(ana, 'net-02-relay-call');
  await ana.context().close();
  await bia.context().close();
});

test('with UDP to TURN dropped, the call connects through TURN over TCP', async () => {
  dropTurnUdp(TURN_PORT);
  try {
    const [caio, davi] = await callAcross('caio', 'davi', 'Jogos');
    for (const [name, page] of [['caio', caio], ['davi', davi]]) {
      const [pair] = await selectedPairs(page);
      assert.equal(pair.state, 'connected');
      assert.equal(pair.local?.type, 'relay', `${name}: ${JSON.stringify(pair)}`);
      assert.equal(pair.local.relayProtocol, 'tcp', `${name} reaches TURN over TCP: ${JSON.stringify(pair)}`);
    }
    await screenshot(caio, 'net-02-relay-tcp-call');
    await caio.context().close();
    await davi.context().close();
  } finally {
    allowTurnUdp(TURN_PORT);
  }
});
