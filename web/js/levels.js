// Who is speaking: the level of each call participant's audio, read with WebAudio
// (an AnalyserNode per stream, one AudioContext for all). DOM-free: the call view asks
// `speaking(key)` a few times a second and marks the tile.

/** Above this RMS level (0..1) someone is speaking. */
const SPEAKING_LEVEL = 0.02;

/** How long the mark stays after the level drops, in ms, so it does not flicker between words. */
const HOLD_MS = 400;

/** Audio levels of several streams, each under a key (a peer id, 'local'). */
export class LevelMeters {
  constructor() {
    this.ctx = null;
    /** key → {stream, trackId, source, analyser, buffer, loudAt} */
    this.meters = new Map();
  }

  /** Watches `stream`'s audio under `key` (again when its audio track changed). */
  watch(key, stream) {
    const track = stream?.getAudioTracks()[0];
    const current = this.meters.get(key);
    if (current && current.trackId === track?.id) return;
    this.unwatch(key);
    if (!track) return;
    const AudioCtx = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!AudioCtx) return;
    try {
      this.ctx ??= new AudioCtx();
      if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
      const source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = this.ctx.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser);
      this.meters.set(key, { trackId: track.id, track, source, analyser, buffer: new Float32Array(analyser.fftSize), loudAt: 0 });
    } catch (err) {
      console.warn('audio level unavailable', err);
    }
  }

  unwatch(key) {
    const m = this.meters.get(key);
    if (!m) return;
    m.source.disconnect();
    this.meters.delete(key);
  }

  /** The RMS level (0..1) of `key`'s audio now; 0 when muted or not watched. */
  level(key) {
    const m = this.meters.get(key);
    if (!m || !m.track.enabled || m.track.readyState !== 'live') return 0;
    m.analyser.getFloatTimeDomainData(m.buffer);
    let sum = 0;
    for (const v of m.buffer) sum += v * v;
    return Math.sqrt(sum / m.buffer.length);
  }

  /** Whether `key` is speaking (loud now, or a moment ago). */
  speaking(key) {
    const m = this.meters.get(key);
    if (!m) return false;
    const now = Date.now();
    if (this.level(key) >= SPEAKING_LEVEL) m.loudAt = now;
    return now - m.loudAt < HOLD_MS;
  }

  /** Stops everything (the call ended). */
  close() {
    for (const key of [...this.meters.keys()]) this.unwatch(key);
    this.ctx?.close().catch(() => {});
    this.ctx = null;
  }
}
