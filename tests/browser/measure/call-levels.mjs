// Measures what the speaking marks (web/js/levels.js) cost a call page (not a test: it
// asserts nothing and prints one JSON line per run). Three pages in a video call; on one of
// them, over 10 s: the main thread's script time (CDP Performance.getMetrics ScriptDuration)
// and the time spent reading audio levels (AnalyserNode.getFloatTimeDomainData, wrapped by
// an init script), per second of call.
//   cd tests/browser && TERTULIA_BIN=../../target/debug/tertulia node measure/call-levels.mjs
import { launch, newPage, registerViaUi, videoCall, waitForMedia } from '../lib/browser.js';
import { startServer } from '../lib/server.js';

const server = await startServer({ ringTimeoutMs: 30_000 });
const browser = await launch();
const WINDOW_MS = 10_000;
try {
  for (let run = 0; run < 3; run++) {
    const [a, b, c] = [`ana${run}`, `bia${run}`, `caio${run}`];
    const ana = await newPage(browser, server);
    await ana.context().addInitScript(() => {
      const read = AnalyserNode.prototype.getFloatTimeDomainData;
      window.__levels = { calls: 0, ms: 0 };
      AnalyserNode.prototype.getFloatTimeDomainData = function (buffer) {
        const t0 = performance.now();
        read.call(this, buffer);
        window.__levels.ms += performance.now() - t0;
        window.__levels.calls += 1;
      };
    });
    await ana.reload();
    await registerViaUi(ana, a, { themes: ['Livros'] });
    const bia = await newPage(browser, server);
    await registerViaUi(bia, b, { themes: ['Livros'] });
    const caio = await newPage(browser, server);
    await registerViaUi(caio, c, { themes: ['Livros'] });
    await videoCall(ana, bia, 'Livros', b);
    await ana.getByRole('button', { name: 'Add someone' }).click();
    await ana.getByRole('button', { name: `Add ${c} to the call` }).click();
    await caio.getByRole('alertdialog').getByRole('button', { name: 'Accept' }).click();
    await Promise.all([ana, bia, caio].map((p) => waitForMedia(p, { count: 2 })));
    const cdp = await ana.context().newCDPSession(ana);
    await cdp.send('Performance.enable');
    const script = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ScriptDuration').value;
    const s0 = await script();
    const l0 = await ana.evaluate(() => ({ ...window.__levels }));
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const s1 = await script();
    const l1 = await ana.evaluate(() => ({ ...window.__levels }));
    const secs = WINDOW_MS / 1000;
    console.log(JSON.stringify({
      run,
      tiles_metered: 3,
      script_ms_per_s: +(((s1 - s0) * 1000) / secs).toFixed(2),
      level_reads_per_s: +((l1.calls - l0.calls) / secs).toFixed(1),
      level_read_ms_per_s: +((l1.ms - l0.ms) / secs).toFixed(3),
    }));
    for (const p of [ana, bia, caio]) await p.context().close();
  }
} finally {
  await browser.close();
  await server.stop();
}
