// The connection check page (check.html): what calls need, checked from this browser, with
// a verdict in plain words. Camera and microphone (a preview and a level meter); which ICE
// candidates this browser gathers with the servers Tertulia hands out (host,
// server-reflexive, TURN relay over UDP, TCP, TLS); the WebSocket round trip to the
// server. Linked from the profile and from a call that could not connect.

import { api } from './api.js';
import { byId, h, replaceChildren } from './dom.js';
import { icon } from './icons.js';
import { LANGUAGES, language, onLanguageChange, setLanguage, t, translatePage } from './i18n.js';

/** Longest wait for ICE gathering to complete (an unreachable TURN server can stall it), in ms. */
const GATHER_TIMEOUT_MS = 10_000;

/** Pings sent to measure the WebSocket round trip (the best one is reported). */
const PINGS = 3;

/** Longest wait for the WebSocket to open or answer a ping, in ms. */
const WS_TIMEOUT_MS = 5_000;

/** How often the microphone level meter is refreshed, in ms. */
const LEVEL_INTERVAL_MS = 100;

/** Everything the page shows; `render()` draws it in the current language. */
const state = {
  /** 'pending' | 'ok' | 'audio-only' | 'denied' | 'none' */
  media: 'pending',
  /** 'pending' | 'done' | 'login' | 'error' */
  ice: 'pending',
  /** Candidate kinds seen: host, srflx, relay-udp, relay-tcp, relay-tls. */
  found: new Set(),
  /** The TURN URLs the server hands out (empty: none configured). */
  turnUrls: [],
  stunUrls: [],
  /** 'pending' | 'ok' | 'error' */
  ws: 'pending',
  rttMs: null,
};

/** Stops the previous run's camera, meter and connections. */
let cleanup = [];

/** The kind of a gathered candidate: `host`, `srflx` or `relay-<udp|tcp|tls>`. */
function candidateKind(candidate) {
  const type = candidate.type || / typ (\w+)/.exec(candidate.candidate)?.[1];
  if (type !== 'relay') return type === 'prflx' ? 'srflx' : type;
  let proto = candidate.relayProtocol;
  if (!proto) {
    // Browsers without `relayProtocol` say it in the priority's type preference
    // (Chromium: 2 = UDP, 1 = TCP, 0 = TLS).
    const pref = (candidate.priority ?? 0) >>> 24;
    proto = pref >= 2 ? 'udp' : pref === 1 ? 'tcp' : 'tls';
  }
  return `relay-${proto}`;
}

/** The verdict: 'pending' | 'ok' | 'unreachable' | 'unconfigured' | 'login' | 'error'. */
function verdict() {
  if (state.ice === 'login') return 'login';
  if ([...state.found].some((k) => k.startsWith('relay-'))) return 'ok';
  if (state.ice === 'error') return 'error';
  if (state.ice === 'pending') return 'pending';
  return state.turnUrls.length ? 'unreachable' : 'unconfigured';
}

function render() {
  translatePage();
  const lang = byId('lang-button');
  replaceChildren(lang, icon('globe'), h('span', { text: t('lang.switch') }));
  lang.setAttribute('aria-label', t('lang.switch.label'));
  lang.setAttribute('lang', language() === 'en' ? 'pt-BR' : 'en');

  const v = verdict();
  const box = byId('check-verdict');
  box.dataset.verdict = v;
  byId('check-verdict-text').textContent = t(`check.verdict.${v}`);

  const media = byId('check-media-status');
  media.dataset.state = state.media;
  media.textContent = t(`check.media.${state.media}`);

  const servers = [...state.stunUrls, ...state.turnUrls];
  byId('check-ice-servers').textContent = state.ice === 'login' ? '' : servers.length ? t('check.ice.servers', { urls: servers.join(', ') }) : t('check.ice.noservers');
  for (const li of byId('check-candidates').querySelectorAll('li')) {
    const found = state.found.has(li.dataset.kind);
    const result = found ? 'yes' : state.ice === 'pending' ? 'pending' : 'no';
    li.dataset.found = result;
    li.querySelector('.check-result').textContent = t(result === 'yes' ? 'check.found' : result === 'no' ? 'check.notfound' : 'check.pending');
  }

  const ws = byId('check-ws');
  ws.dataset.state = state.ws;
  if (state.rttMs !== null) ws.dataset.rttMs = String(state.rttMs);
  ws.textContent = state.ws === 'ok' ? t('check.ws.ok', { ms: state.rttMs }) : t(`check.ws.${state.ws}`);
}

/** Camera and microphone: a preview, and the microphone's level in the meter. */
async function checkMedia() {
  const md = navigator.mediaDevices;
  let stream = null;
  for (const constraints of [{ video: true, audio: true }, { audio: true }]) {
    try {
      stream = await md.getUserMedia(constraints);
      break;
    } catch (err) {
      if (err?.name === 'NotAllowedError') {
        state.media = 'denied';
        render();
        return;
      }
    }
  }
  if (!stream) {
    state.media = 'none';
    render();
    return;
  }
  cleanup.push(() => stream.getTracks().forEach((tr) => tr.stop()));
  state.media = stream.getVideoTracks().length ? 'ok' : 'audio-only';
  byId('check-video').srcObject = stream;
  render();
  const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
  if (!Ctx || !stream.getAudioTracks().length) return;
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const meter = byId('check-level');
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    // RMS scaled so speech sits mid-meter.
    meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
  }, LEVEL_INTERVAL_MS);
  cleanup.push(() => {
    clearInterval(timer);
    ctx.close().catch(() => {});
  });
}

/** Gathers ICE candidates with the server's STUN/TURN servers and records their kinds. */
async function checkIce() {
  let body;
  try {
    body = await api('GET', '/api/ice-servers');
  } catch (err) {
    state.ice = err.status === 401 ? 'login' : 'error';
    render();
    return;
  }
  const servers = body?.ice_servers || [];
  const urls = servers.flatMap((s) => s.urls);
  state.turnUrls = urls.filter((u) => /^turns?:/.test(u));
  state.stunUrls = urls.filter((u) => /^stuns?:/.test(u));
  render();
  const pc = new RTCPeerConnection({ iceServers: servers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })) });
  cleanup.push(() => pc.close());
  pc.createDataChannel('check');
  const done = new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate) {
        clearTimeout(timer);
        resolve();
        return;
      }
      state.found.add(candidateKind(candidate));
      render();
    };
  });
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  state.ice = 'done';
  render();
}

/** The WebSocket round trip: the best of a few `ping` → `pong`, in ms. */
async function checkWebSocket() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  cleanup.push(() => ws.close());
  const next = (type) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout')), WS_TIMEOUT_MS);
      const onMessage = (e) => {
        let frame;
        try {
          frame = JSON.parse(e.data);
        } catch {
          return;
        }
        if (frame.type !== type) return;
        clearTimeout(timer);
        ws.removeEventListener('message', onMessage);
        resolve(frame);
      };
      ws.addEventListener('message', onMessage);
      ws.addEventListener('close', () => reject(new Error('closed')), { once: true });
    });
  try {
    await next('welcome');
    let best = Infinity;
    for (let i = 0; i < PINGS; i++) {
      const start = performance.now();
      const pong = next('pong');
      ws.send(JSON.stringify({ type: 'ping' }));
      await pong;
      best = Math.min(best, performance.now() - start);
    }
    state.ws = 'ok';
    state.rttMs = Math.max(1, Math.round(best));
  } catch {
    state.ws = 'error';
  } finally {
    ws.close();
  }
  render();
}

/** Runs every check afresh. */
async function runChecks() {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  Object.assign(state, { media: 'pending', ice: 'pending', found: new Set(), turnUrls: [], stunUrls: [], ws: 'pending', rttMs: null });
  render();
  await Promise.all([checkMedia(), checkIce(), checkWebSocket()]);
}

byId('lang-button').addEventListener('click', () => {
  setLanguage(LANGUAGES[(LANGUAGES.indexOf(language()) + 1) % LANGUAGES.length]);
});
onLanguageChange(render);
byId('check-again').addEventListener('click', () => runChecks());
runChecks();
