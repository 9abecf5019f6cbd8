// Measures what a WebSocket blip does to a running video call (not a test: it asserts
// nothing and prints one JSON line per run). Two pages in a call, one of them behind a TCP
// proxy; the proxy resets that page's connections and refuses new ones for 3 s. Printed:
// video frames each side decoded during the first 2.5 s offline (media is peer to peer), when
// the page's WebSocket was back, and when both decoded video on the new connections.
//   cd tests/browser && TERTULIA_BIN=../../target/debug/tertulia node measure/call-blip.mjs
import { launch, newPage, personIn, registerViaUi, waitForMedia } from '../lib/browser.js';
import { startServer } from '../lib/server.js';
import { startProxy } from '../lib/proxy.js';
const server = await startServer();
const browser = await launch();
const proxy = await startProxy(server.port);
const frames = async (page) => page.evaluate(async () => {
  let n = 0; const out = [];
  for (const pc of window.__pcs) { if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; }); out.push(pc.connectionState); }
  return { n, out };
});
try {
  for (let run = 0; run < 3; run++) {
    const a = `ana${run}`, b = `bia${run}`;
    const ana = await newPage(browser, server, { url: proxy.url });
    await registerViaUi(ana, a, { themes: ['Livros'] });
    const bia = await newPage(browser, server);
    await registerViaUi(bia, b, { themes: ['Livros'] });
    await personIn(ana, 'Livros', b).getByRole('button', { name: `Video call ${b}` }).click();
    await bia.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
    await Promise.all([waitForMedia(ana), waitForMedia(bia)]);
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    const f0 = await frames(bia), g0 = await frames(ana);
    proxy.cut({ downMs: 3000 });
    await new Promise((r) => setTimeout(r, 2500));
    const f1 = await frames(bia), g1 = await frames(ana);
    await ana.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30000 });
    const tBack = Date.now() - t0;
    await bia.locator('.tile.remote[data-state=connected]', { hasText: a }).waitFor({ timeout: 30000 });
    const both = await Promise.all([waitForMedia(ana), waitForMedia(bia)]);
    const tMedia = Date.now() - t0;
    console.log(JSON.stringify({ run, offline_2_5s_frames_bia: f1.n - f0.n, offline_2_5s_frames_ana: g1.n - g0.n, ws_back_ms: tBack, video_again_ms: tMedia, back_to_video_ms: tMedia - tBack }));
    await ana.context().close(); await bia.context().close();
  }
} finally { await browser.close(); await proxy.stop(); await server.stop(); }
