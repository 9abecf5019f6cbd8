// The ring: a soft two-tone pattern made with Web Audio, so no sound file is needed.
// Browsers may refuse sound before the first user gesture; the prompt is visible anyway.

/** One ring cycle: two short tones, then silence, in ms. */
const RING_PERIOD_MS = 3000;

let ctx = null;
let timer = null;

function tone(freq, start, duration) {
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = 'sine';
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0, start);
  gain.gain.linearRampToValueAtTime(0.12, start + 0.03);
  gain.gain.linearRampToValueAtTime(0, start + duration);
  osc.connect(gain).connect(ctx.destination);
  osc.start(start);
  osc.stop(start + duration + 0.05);
}

function ringOnce() {
  const now = ctx.currentTime;
  tone(660, now, 0.35);
  tone(880, now + 0.45, 0.35);
}

/** Starts ringing until stopRinging(). */
export function startRinging() {
  stopRinging();
  try {
    ctx = ctx || new AudioContext();
    ctx.resume?.().catch(() => {});
    ringOnce();
    timer = setInterval(ringOnce, RING_PERIOD_MS);
  } catch {
    // No audio output or not allowed yet: the prompt still shows.
  }
}

/** Stops the ring. */
export function stopRinging() {
  clearInterval(timer);
  timer = null;
}
