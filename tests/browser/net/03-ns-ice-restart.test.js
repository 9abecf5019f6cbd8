// A call that loses its network path recovers through TURN by ICE restart. Ana (tertulia-a)
// and Bia (tertulia-b) first have a direct path (tertulia-r forwards between them) and
// their call connects host to host. Then the path dies: tertulia-r drops every forwarded
// packet, silently, while TURN stays reachable. Nobody clicks anything: the pages show
// "Reconnecting", restart ICE, find the relay and go on decoding video. The seconds from
// the cut to frames flowing again through the relay are measured and printed. The TURN
// credentials the call started with have expired by then: the restart fetches fresh ones.
// Run by net/run.sh inside tertulia-r (`ip netns exec`), never alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, registerViaUi, screenshot, videoCall } from '../lib/browser.js';
import { HOST_IP, NS_A, NS_B, SERVICES_IP, cutDirectPath, openDirectPath, relayWorld, routes, selectedPairs } from './lib/netns.js';

const SECRET = 'turn-test-secret-03';
const TURN_PORT = 3478;
/** Lifetime of TURN credentials in this test, in seconds. */
const TTL_SECS = 4;
/** Generous bound on the recovery (the aim is 5 s; two busy cores can double it). */
const RECOVERY_TIMEOUT_MS = 30_000;

const world = relayWorld({
  port: TURN_PORT,
  secret: SECRET,
  // Short-lived credentials: the ones the call started with have expired by the cut, so the
  // restart must fetch fresh ones (coturn refuses expired ones: see file 01).
  serverArgs: ['--turn-ttl-secs', String(TTL_SECS)],
  // The direct path exists when the call starts.
  beforeStart: openDirectPath,
});

/**
 * Starts recording, in the page, every 100 ms: the time, the video frames decoded, the
 * connection state and the selected pair's local candidate type; and every state the
 * remote tile shows (`data-state`), as it changes.
 */
async function startRecording(page) {
  await page.evaluate(() => {
    window.__samples = [];
    window.__tileStates = [];
    const tile = document.querySelector('.tile.remote');
    const note = () => {
      const s = tile.dataset.state;
      if (window.__tileStates.at(-1)?.state !== s) window.__tileStates.push({ t: Date.now(), state: s });
    };
    note();
    new MutationObserver(note).observe(tile, { attributes: true, attributeFilter: ['data-state'] });
    window.__callStates = [document.getElementById('call-state').textContent];
    new MutationObserver(() => {
      const text = document.getElementById('call-state').textContent;
      if (window.__callStates.at(-1) !== text) window.__callStates.push(text);
    }).observe(document.getElementById('call-state'), { childList: true, characterData: true, subtree: true });
    window.__sampler = setInterval(async () => {
      const pc = window.__pcs.find((p) => p.connectionState !== 'closed');
      if (!pc) return;
      const stats = await pc.getStats();
      const byId = new Map();
      stats.forEach((s) => byId.set(s.id, s));
      let frames = 0;
      let audio = 0;
      let encoded = 0;
      let local = null;
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') audio += s.packetsReceived || 0;
        if (s.type === 'outbound-rtp' && s.kind === 'video') encoded += s.framesEncoded || 0;
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          local = byId.get(byId.get(s.selectedCandidatePairId)?.localCandidateId)?.candidateType ?? null;
        }
      });
      window.__samples.push({ t: Date.now(), frames, audio, encoded, state: pc.connectionState, local });
    }, 100);
  });
}

/** The ICE username fragment of the page's open connection (an ICE restart changes it). */
function iceUfrag(page) {
  return page.evaluate(() => {
    const pc = window.__pcs.find((p) => p.connectionState !== 'closed');
    return /a=ice-ufrag:(\S+)/.exec(pc.localDescription.sdp)?.[1];
  });
}

/** The page's recording so far. */
function recording(page) {
  return page.evaluate(() => ({ samples: window.__samples, tileStates: window.__tileStates, callStates: window.__callStates }));
}

/**
 * The first time after `since` when frames are decoded again through the relay: a sample
 * whose selected pair is local `relay` and whose frame count grew since the one before.
 */
function recoveredAt(samples, since, counter = 'frames') {
  for (let i = 1; i < samples.length; i++) {
    const s = samples[i];
    if (s.t > since && s.local === 'relay' && s.state === 'connected' && s[counter] > samples[i - 1][counter]) return s.t;
  }
  return null;
}

test('a direct call whose path dies recovers through the TURN relay by ICE restart', async () => {
  assert.equal(routes(NS_A, HOST_IP[NS_B]), true, 'the direct path exists at first');
  const ana = await newPage(world.browsers[0], world.server);
  await registerViaUi(ana, 'ana', { themes: ['Livros'] });
  const bia = await newPage(world.browsers[1], world.server);
  await registerViaUi(bia, 'bia', { themes: ['Livros'] });
  await videoCall(ana, bia, 'Livros', 'bia');
  for (const page of [ana, bia]) {
    const [pair] = await selectedPairs(page);
    assert.equal(pair.local?.type, 'host', `connected directly first: ${JSON.stringify(pair)}`);
    assert.equal(pair.remote?.type, 'host', `connected directly first: ${JSON.stringify(pair)}`);
    await page.locator('.tile.remote[data-state=connected]').waitFor();
  }
  await Promise.all([startRecording(ana), startRecording(bia)]);
  const ufragBefore = { ana: await iceUfrag(ana), bia: await iceUfrag(bia) };
  // A call under way for a few seconds (bitrate ramped up), not one just started, and
  // long enough for the TURN credentials it started with to have expired.
  await new Promise((r) => setTimeout(r, (TTL_SECS + 2) * 1000));

  const cutAt = Date.now();
  cutDirectPath();

  // Both pages recover on their own: relay pair, connected, frames growing again.
  const deadline = cutAt + RECOVERY_TIMEOUT_MS;
  const recovered = {};
  while (Object.keys(recovered).length < 2) {
    for (const [name, page] of [['ana', ana], ['bia', bia]]) {
      if (recovered[name]) continue;
      const at = recoveredAt((await recording(page)).samples, cutAt);
      if (at) recovered[name] = at;
    }
    if (Date.now() > deadline) {
      const last = await Promise.all([ana, bia].map(async (p) => (await recording(p)).samples.slice(-5)));
      assert.fail(`not recovered within ${RECOVERY_TIMEOUT_MS} ms: ${JSON.stringify({ recovered, last })}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const [name, page] of [['ana', ana], ['bia', bia]]) {
    const { tileStates, callStates } = await recording(page);
    const states = tileStates.map((s) => s.state);
    // What the person reads: Connected, Reconnecting, Connected.
    assert.deepEqual(callStates.slice(callStates.indexOf('Reconnecting') - 1), ['Connected', 'Reconnecting', 'Connected'], `${name}: ${JSON.stringify(callStates)}`);
    // The tile said so while the path was down ("Reconnecting"), and is connected again.
    assert.ok(states.includes('disconnected') || states.includes('failed'), `${name}'s page showed the connection trouble: ${JSON.stringify(states)}`);
    await page.locator('.tile.remote[data-state=connected]').waitFor();
    await page.locator('#call-view[data-phase=active][data-connection=connected]').waitFor();
    const pairs = await selectedPairs(page);
    assert.equal(pairs.length, 1, `${name}: the same single connection, restarted`);
    assert.equal(pairs[0].local?.type, 'relay', `${name} now goes through the relay: ${JSON.stringify(pairs)}`);
    assert.notEqual(await iceUfrag(page), ufragBefore[name], `${name}'s connection restarted ICE`);
    const secs = ((recovered[name] - cutAt) / 1000).toFixed(1);
    const audioAt = recoveredAt((await recording(page)).samples, cutAt, 'audio');
    const audioSecs = audioAt ? ((audioAt - cutAt) / 1000).toFixed(1) : '?';
    if (process.env.NET_DEBUG) {
      const { samples } = await recording(page);
      console.log(samples.filter((x) => x.t > cutAt - 300).map((x) => `${x.t - cutAt}:${x.frames}:${x.audio}:${x.encoded}:${x.local}`).join(' '));
    }
    console.log(`MEASURED: ${name}: frames flowing again through the relay ${secs} s after the cut (audio ${audioSecs} s); tile states ${JSON.stringify(tileStates.map((s) => [s.state, s.t - cutAt]))}`);
  }
  await screenshot(ana, 'net-03-recovered');
});
