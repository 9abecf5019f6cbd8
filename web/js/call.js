// One call's media: local capture, one RTCPeerConnection per remote peer (a mesh, so a
// third person simply adds two more connections), perfect negotiation with the roles the
// server hands out, trickle ICE, ICE restart on failure and a clean teardown.
//
// DOM-free: the call view listens to `onChange` and reads `peers`, `localStream`.

/** How long a "disconnected" connection may stay so before we restart ICE, in ms. */
const DISCONNECTED_GRACE_MS = 2000;

/**
 * How long a connected peer may send us nothing at all (no media, no RTCP, no ICE checks)
 * before we take the path for dead and restart ICE, in ms. A live connection always
 * carries something (audio frames every 20 ms, RTCP reports every second or so); the
 * browser's own "disconnected" comes only some six seconds after a path dies, and a call
 * should be back sooner than that (through TURN when the direct path is gone).
 */
const STALL_MS = 1500;

/** How often the stall watchdog reads a connection's byte counter, in ms. */
const WATCH_INTERVAL_MS = 250;

/**
 * After a stall, the key frame goes as soon as the other side's media reaches us again, or
 * this long after bytes came back when they send no media, in ms.
 */
const KEY_FRAME_FALLBACK_MS = 1500;

/**
 * Only a connection whose bytes grew at every reading for this long before they stopped
 * counts as stalled, in ms: a call where nobody sends media (sparse RTCP and ICE checks
 * only) must not restart ICE over and over.
 */
const STEADY_MS = 2000;

/**
 * How long a peer may take to connect for the first time before the call is said not to
 * connect, in ms: ICE settles well within this once every path (host, server-reflexive,
 * TURN over UDP and TCP) was tried, and a call screen must not wait forever.
 */
export const CONNECT_TIMEOUT_MS = 15000;

/**
 * A call that ended this long (or less) before CONNECT_TIMEOUT_MS without ever connecting
 * is taken to have ended because it could not connect (the other side's timer fired
 * first and hung up), in ms.
 */
const UNREACHABLE_MARGIN_MS = 5000;

/** ICE servers (and their TURN credentials) younger than this are reused for a restart, in ms. */
const ICE_REFRESH_MS = 5_000;

/** How long the polite side waits for the other side's first offer before offering itself. */
const FIRST_OFFER_WAIT_MS = 3000;

/**
 * How long a participant whose connection to the server dropped keeps their tile, when the
 * server's `welcome` does not say (its `limits.call_reconnect_grace_ms`), in ms.
 */
const DEFAULT_RECONNECT_GRACE_MS = 20000;

/** Waited beyond the server's grace before giving up on a participant ourselves, in ms. */
const AWAY_MARGIN_MS = 5000;

/**
 * Captures local media for a call of `media` ('video' or 'audio') within what the user's
 * capabilities allow, degrading rather than failing: camera+mic, then mic only, then camera
 * only, then nothing (receive only). Resolves with `{stream, missing}`.
 */
export async function captureMedia(media, caps) {
  const wantVideo = media === 'video' && caps.includes('video');
  const wantAudio = caps.includes('audio') || media === 'audio';
  const md = globalThis.navigator?.mediaDevices;
  const attempts = [];
  // The camera and microphone chosen last time (devices.js), preferred but not required.
  const video = preferredDevice('videoinput');
  const audio = preferredDevice('audioinput');
  if (wantVideo && wantAudio) attempts.push({ video, audio });
  if (wantAudio) attempts.push({ audio });
  if (wantVideo) attempts.push({ video });
  for (const constraints of attempts) {
    try {
      if (!md?.getUserMedia) break;
      const stream = await md.getUserMedia(constraints);
      const missing = [];
      if (wantVideo && !stream.getVideoTracks().length) missing.push('video');
      if (wantAudio && !stream.getAudioTracks().length) missing.push('audio');
      return { stream, missing };
    } catch (err) {
      console.warn('getUserMedia failed for', constraints, err?.name || err);
    }
  }
  const missing = [];
  if (wantVideo) missing.push('video');
  if (wantAudio) missing.push('audio');
  return { stream: new MediaStream(), missing };
}

/**
 * The constraint for the device of `kind` the user chose last time (remembered in
 * localStorage by the call's device menu): `{deviceId: {ideal}}`, or `true` for the default.
 */
export function preferredDevice(kind) {
  try {
    const id = globalThis.localStorage?.getItem(`tertulia.device.${kind}`);
    return id ? { deviceId: { ideal: id } } : true;
  } catch {
    return true;
  }
}

/** Remembers the device of `kind` chosen for calls ('' forgets it: the default). */
export function rememberDevice(kind, deviceId) {
  try {
    if (deviceId) globalThis.localStorage?.setItem(`tertulia.device.${kind}`, deviceId);
    else globalThis.localStorage?.removeItem(`tertulia.device.${kind}`);
  } catch {
    // Not remembered; still used for this call.
  }
}

/** One remote participant: their connection, negotiation state and incoming media. */
class Peer {
  constructor(session, info, polite) {
    this.session = session;
    this.peerId = info.peer_id;
    this.user = info.user;
    this.polite = polite;
    this.stream = new MediaStream();
    /** Their shared screen (a second video track, sent in a stream of its own), or null. */
    this.screen = null;
    /** The id of the stream their camera and microphone come in: any other is a screen. */
    this.mainStreamId = null;
    this.state = 'new';
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.gotOffer = false;
    this.closed = false;
    /** Their connection to the server dropped; the call holds them for a while. */
    this.away = false;
    this.awayTimer = null;
    // Signals are handled one at a time, in arrival order.
    this.queue = Promise.resolve();
    this.disconnectTimer = null;
    this.firstOfferTimer = null;
    /** Nothing has arrived for STALL_MS on a connected path: shown as reconnecting. */
    this.stalled = false;
    this.lastReceived = -1;
    this.lastReceivedAt = Date.now();
    /** Since when every reading showed new bytes (null: the flow is not steady). */
    this.steadySince = null;
    /** A key frame is owed to the other side once the path is back (see watch()). */
    this.keyFrameOwed = false;
    this.lastMedia = 0;
    this.stallEndedAt = 0;
    this.watching = false;
    this.watchTimer = setInterval(() => this.watch(), WATCH_INTERVAL_MS);
    /** Whether this connection was ever up; if not within CONNECT_TIMEOUT_MS, it cannot be. */
    this.everConnected = false;
    this.connectTimer = setTimeout(() => session.connectTimedOut(this), CONNECT_TIMEOUT_MS);

    const pc = new RTCPeerConnection({ iceServers: session.iceServers });
    this.pc = pc;
    for (const track of session.localStream.getTracks()) pc.addTrack(track, session.localStream);
    // Someone joining while we share our screen sees it too.
    if (session.screenStream) this.addScreen(session.screenStream);
    // Receive what we do not send, so an audio-only or camera-less participant still sees
    // and hears the others. Only the offering (impolite) side adds these, so the answer does
    // not grow extra m-lines.
    if (!polite) {
      if (session.media === 'video' && !session.localStream.getVideoTracks().length) {
        pc.addTransceiver('video', { direction: 'recvonly' });
      }
      if (!session.localStream.getAudioTracks().length) {
        pc.addTransceiver('audio', { direction: 'recvonly' });
      }
    }

    pc.onnegotiationneeded = () => this.negotiate();
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.send('candidate', candidate.toJSON());
    };
    pc.ontrack = ({ track, streams }) => {
      // Camera and microphone come first, in one stream; a video track in another stream
      // is their shared screen.
      const streamId = streams?.[0]?.id || null;
      this.mainStreamId ??= streamId;
      if (track.kind === 'video' && streamId && streamId !== this.mainStreamId) {
        this.screen = new MediaStream([track]);
        track.onunmute = () => session.changed();
        track.onmute = () => session.changed();
        track.onended = () => session.changed();
        session.changed();
        return;
      }
      // One stream per peer, whatever stream ids the other side used.
      for (const old of this.stream.getTracks()) {
        if (old.kind === track.kind) this.stream.removeTrack(old);
      }
      this.stream.addTrack(track);
      track.onunmute = () => session.changed();
      track.onmute = () => session.changed();
      track.onended = () => session.changed();
      session.changed();
    };
    pc.onconnectionstatechange = () => this.onConnectionState();

    if (polite) {
      // The existing member offers first; offer ourselves only if it never comes.
      this.firstOfferTimer = setTimeout(() => {
        if (!this.gotOffer && !this.closed) {
          this.gotOffer = true;
          this.negotiate();
        }
      }, FIRST_OFFER_WAIT_MS);
    }
  }

  /** Sends our shared screen to this peer (the negotiation that follows is the usual one). */
  addScreen(stream) {
    if (this.closed || this.screenSender) return;
    const [track] = stream.getVideoTracks();
    if (track) this.screenSender = this.pc.addTrack(track, stream);
  }

  /** Stops sending our screen to this peer. */
  removeScreen() {
    if (this.closed || !this.screenSender) return;
    try {
      this.pc.removeTrack(this.screenSender);
    } catch (err) {
      console.warn('removing the screen track failed', err);
    }
    this.screenSender = null;
  }

  /** Whether their shared screen is coming in now. */
  get sharing() {
    const track = this.screen?.getVideoTracks()[0];
    return Boolean(track && track.readyState === 'live' && !track.muted);
  }

  send(kind, data) {
    this.session.client.signal(this.session.room, this.peerId, kind, data);
  }

  async negotiate() {
    // The newcomer waits for the first offer so the usual start has no glare at all.
    if (this.closed || (this.polite && !this.gotOffer)) return;
    if (this.pc.signalingState !== 'stable') return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.send('offer', this.pc.localDescription.toJSON());
    } catch (err) {
      console.warn('offer failed', err);
    } finally {
      this.makingOffer = false;
    }
  }

  onSignal(kind, data) {
    this.queue = this.queue.then(() => this.handleSignal(kind, data)).catch((err) => {
      console.warn('signal handling failed', kind, err);
    });
  }

  async handleSignal(kind, data) {
    if (this.closed) return;
    const pc = this.pc;
    if (kind === 'offer' || kind === 'answer') {
      const description = { type: data.type || kind, sdp: data.sdp };
      const collision =
        description.type === 'offer' && (this.makingOffer || pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      if (description.type === 'offer') {
        this.gotOffer = true;
        clearTimeout(this.firstOfferTimer);
      }
      // A polite peer's pending offer is rolled back implicitly here.
      await pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        this.send('answer', pc.localDescription.toJSON());
        // Tracks the offer had no place for (we send video, they did not offer it) need an
        // offer of ours; the browser will not fire negotiationneeded again for them.
        const unsent = pc.getTransceivers().some((t) => t.sender.track && !t.mid);
        if (unsent) this.negotiate();
      }
    } else if (kind === 'candidate') {
      try {
        await pc.addIceCandidate(data);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }

  /**
   * The stall watchdog: a connected peer from whom no byte arrived for STALL_MS lost its
   * path; we say so (the tile shows reconnecting) and restart ICE at once, which finds
   * another path (the TURN relay) while the old one may still come back. Bytes arriving
   * again end the stall.
   */
  async watch() {
    if (this.closed || this.watching) return;
    this.watching = true;
    try {
      const stats = await this.pc.getStats();
      let received = 0;
      let media = 0;
      stats.forEach((s) => {
        if (s.type === 'transport') received += s.bytesReceived || 0;
        if (s.type === 'inbound-rtp') media += s.packetsReceived || 0;
      });
      const now = Date.now();
      // Their media moved since the last reading (the counters may start over from zero
      // after a renegotiation, so any change counts).
      const mediaMoved = media > 0 && media !== this.lastMedia;
      this.lastMedia = media;
      // After a stall, a key frame once their media reaches us again (so the path carries
      // media both ways: ICE checks come through a little earlier), or after a while.
      if (this.keyFrameOwed && !this.stalled && (mediaMoved || now - this.stallEndedAt >= KEY_FRAME_FALLBACK_MS)) {
        this.keyFrameOwed = false;
        this.sendKeyFrame();
      }
      if (received !== this.lastReceived) {
        // Steady: new bytes at every reading since `steadySince`; a gap starts it anew.
        if (this.steadySince === null || now - this.lastReceivedAt > WATCH_INTERVAL_MS * 2) this.steadySince = now;
        this.lastReceived = received;
        this.lastReceivedAt = now;
        if (this.stalled) {
          this.stalled = false;
          this.stallEndedAt = now;
          this.state = this.pc.connectionState;
          this.session.changed();
        }
      } else if (
        !this.stalled &&
        this.pc.connectionState === 'connected' &&
        now - this.lastReceivedAt > STALL_MS &&
        this.steadySince !== null &&
        this.lastReceivedAt - this.steadySince >= STEADY_MS
      ) {
        this.steadySince = null;
        this.stalled = true;
        this.keyFrameOwed = true;
        this.state = 'disconnected';
        this.session.changed();
        this.restartIce();
      }
    } catch (err) {
      // A connection closed meanwhile: nothing to watch any more.
      if (!this.closed) console.warn('stats failed', err);
    } finally {
      this.watching = false;
    }
  }

  /**
   * Makes our video encoders start over with a key frame, by pausing and resuming each
   * video encoding: after a dead path the other side cannot decode until it gets one, and
   * its own request (sent every few seconds while it waits) may have been lost.
   */
  async sendKeyFrame() {
    for (const sender of this.pc.getSenders()) {
      if (sender.track?.kind !== 'video') continue;
      try {
        for (const active of [false, true]) {
          const params = sender.getParameters();
          if (!params.encodings?.length) break;
          for (const encoding of params.encodings) encoding.active = active;
          await sender.setParameters(params);
        }
      } catch (err) {
        console.warn('key frame request failed', err);
      }
    }
  }

  onConnectionState() {
    const state = this.pc.connectionState;
    // A stalled path stays "reconnecting" until bytes flow again (see watch()).
    this.state = this.stalled && state === 'connected' ? 'disconnected' : state;
    if (state === 'connected') {
      this.everConnected = true;
      clearTimeout(this.connectTimer);
    }
    clearTimeout(this.disconnectTimer);
    if (state === 'failed') {
      this.restartIce();
    } else if (state === 'disconnected') {
      this.disconnectTimer = setTimeout(() => {
        if (this.pc.connectionState === 'disconnected') this.restartIce();
      }, DISCONNECTED_GRACE_MS);
    }
    this.session.changed();
  }

  async restartIce() {
    if (this.closed) return;
    // TURN credentials expire (--turn-ttl-secs): a restart an hour into a call needs fresh
    // ones, or its new relay allocations are refused.
    const iceServers = await this.session.freshIceServers();
    if (this.closed) return;
    if (iceServers) {
      try {
        this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
      } catch (err) {
        console.warn('new ICE servers refused', err);
      }
    }
    // restartIce() makes the next offer carry new ICE credentials; negotiationneeded follows.
    this.gotOffer = true;
    this.pc.restartIce();
  }

  close() {
    this.closed = true;
    this.state = 'closed';
    clearTimeout(this.awayTimer);
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.firstOfferTimer);
    clearInterval(this.watchTimer);
    clearTimeout(this.connectTimer);
    this.pc.onnegotiationneeded = this.pc.onicecandidate = this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

/**
 * A call in progress: joins the call room, meshes with every peer in it and keeps doing so
 * as people join and leave. `onChange()` is called whenever something visible changed;
 * `onEmpty()` when the last other participant left after someone had been there.
 *
 * A dropped WebSocket does not end the call: the server holds a participant for a grace
 * period. While our own socket is down (`reconnecting`) the connections stay up (media is
 * peer to peer and may go on flowing); the client rejoins the room on resume and we connect
 * afresh to everyone. A peer that leaves the room without `call.ended` is kept, `away`,
 * until they come back under a new `peer_id` (that connection replaces theirs) or the grace
 * is over.
 */
export class CallSession {
  constructor({ client, room, media, localStream, iceServers, fetchIceServers, onChange, onEmpty, onLost, onUnreachable }) {
    this.client = client;
    this.room = room;
    this.media = media;
    this.localStream = localStream;
    this.iceServers = iceServers || [];
    /** Asks the server for the ICE servers again (fresh TURN credentials), if given. */
    this.fetchIceServers = fetchIceServers || null;
    this.iceFetchedAt = Date.now();
    this.onChange = onChange || (() => {});
    this.onEmpty = onEmpty || (() => {});
    this.onLost = onLost || (() => {});
    /** `{peer, all}`: a peer could not be reached; `all`: nobody in the call ever was. */
    this.onUnreachable = onUnreachable || (() => {});
    /** When the first peer was added (the call started trying to connect). */
    this.firstPeerAt = null;
    /** peer_id → Peer */
    this.peers = new Map();
    this.connectedAt = null;
    this.hadPeers = false;
    this.ended = false;
    /** Our own connection to the server is down (the call goes on meanwhile). */
    this.reconnecting = false;
    /** Our shared screen, sent to every peer, or null. */
    this.screenStream = null;
    this._off = [];
  }

  /**
   * Shares a screen (or window) with everyone in the call: `getDisplayMedia` asks which;
   * each connection gets the track and renegotiates (perfect negotiation, as at the start).
   * Stopping it in the browser's own bar stops it here too.
   */
  async startScreenShare() {
    if (this.screenStream || this.ended) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    if (this.ended) {
      stream.getTracks().forEach((tr) => tr.stop());
      return;
    }
    this.screenStream = stream;
    const [track] = stream.getVideoTracks();
    if (track) track.onended = () => this.stopScreenShare();
    for (const peer of this.peers.values()) peer.addScreen(stream);
    this.changed();
  }

  /** Stops sharing the screen: every connection drops the track (and renegotiates). */
  stopScreenShare() {
    const stream = this.screenStream;
    if (!stream) return;
    this.screenStream = null;
    for (const peer of this.peers.values()) peer.removeScreen();
    stream.getTracks().forEach((tr) => tr.stop());
    this.changed();
  }

  /**
   * Uses another camera or microphone (`kind` 'videoinput' or 'audioinput'): its track
   * replaces the old one in our stream and on every connection (no renegotiation), keeping
   * the mute or camera-off state.
   */
  async switchDevice(kind, deviceId) {
    const media = kind === 'videoinput' ? 'video' : 'audio';
    const fresh = await navigator.mediaDevices.getUserMedia({ [media]: deviceId ? { deviceId: { exact: deviceId } } : true });
    const [track] = media === 'video' ? fresh.getVideoTracks() : fresh.getAudioTracks();
    if (!track) return;
    if (this.ended) {
      track.stop();
      return;
    }
    const old = media === 'video' ? this.localStream.getVideoTracks()[0] : this.localStream.getAudioTracks()[0];
    if (old) {
      track.enabled = old.enabled;
      this.localStream.removeTrack(old);
    }
    this.localStream.addTrack(track);
    for (const peer of this.peers.values()) {
      const sender = old ? peer.pc.getSenders().find((s) => s.track === old) : null;
      if (sender) await sender.replaceTrack(track);
      else peer.pc.addTrack(track, this.localStream);
    }
    old?.stop();
    this.changed();
  }

  /**
   * The ICE servers with fresh TURN credentials, for an ICE restart: fetched again at most
   * once per ICE_REFRESH_MS (several peers restarting at once share one request); null
   * when they cannot be had (offline), and the connection keeps the ones it has.
   */
  async freshIceServers() {
    if (!this.fetchIceServers) return null;
    if (Date.now() - this.iceFetchedAt < ICE_REFRESH_MS) return this.iceServers;
    this.iceFetch ??= this.fetchIceServers().finally(() => {
      this.iceFetch = null;
    });
    const list = await this.iceFetch;
    // An empty answer is a failed request as often as a server without TURN: keep ours.
    if (!list?.length) return null;
    this.iceServers = list;
    this.iceFetchedAt = Date.now();
    return list;
  }

  /** Whether `user` is us (our own other connections are nobody to call). */
  isMe(user) {
    const me = this.client.me?.id;
    return me !== undefined && me !== null && user?.id === me;
  }

  /** Joins the room and starts connecting to everyone already there. */
  async start() {
    const c = this.client;
    this._off.push(
      c.on('state', (s) => {
        if (s.state === 'reconnecting' && !this.reconnecting) {
          this.reconnecting = true;
          this.changed();
        }
      }),
      c.on('room.joined', (f) => {
        if (f.room !== this.room) return;
        const sessionId = c.welcome?.session_id;
        if (this.sessionId && this.sessionId !== sessionId) {
          // Rejoined after a WebSocket reconnect: we are a new peer to the others, who
          // replace their connections to our old session, so start ours afresh as well.
          for (const peer of this.peers.values()) peer.close();
          this.peers.clear();
        }
        this.sessionId = sessionId;
        this.reconnecting = false;
        for (const p of f.peers) if (!this.isMe(p.user)) this.addPeer(p, p.polite ?? true);
        this.changed();
      }),
      c.on('room.peer_joined', (f) => {
        if (f.room !== this.room || this.isMe(f.peer.user)) return;
        this.addPeer(f.peer, f.peer.polite ?? false);
        // Someone back from a dropped connection: the new one replaces their old one.
        for (const [id, peer] of [...this.peers]) {
          if (id !== f.peer.peer_id && peer.user?.id === f.peer.user?.id) this.removePeer(id);
        }
      }),
      c.on('room.peer_left', (f) => {
        if (f.room !== this.room) return;
        if (f.dropped) this.peerDropped(f.peer_id);
        else this.removePeer(f.peer_id);
      }),
      c.on('signal', (f) => {
        if (f.room !== this.room) return;
        let peer = this.peers.get(f.from);
        // A signal from someone we have not heard join: they were there first, so we are
        // the newcomer and the polite one.
        if (!peer) peer = this.addPeer({ peer_id: f.from, user: { id: null, nickname: '' } }, true);
        peer.onSignal(f.kind, f.data);
      }),
      c.on('room.lost', (f) => {
        if (f.room === this.room) this.onLost(f.error);
      }),
    );
    await c.joinRoom(this.room);
  }

  addPeer(info, polite) {
    const existing = this.peers.get(info.peer_id);
    if (existing) {
      if (info.user?.nickname) existing.user = info.user;
      return existing;
    }
    const peer = new Peer(this, info, polite);
    this.firstPeerAt ??= Date.now();
    this.peers.set(info.peer_id, peer);
    this.hadPeers = true;
    this.changed();
    return peer;
  }

  /**
   * A peer's connection to the server ended: the server holds them in the call, so keep
   * their tile (and connection: media may still flow), `away`, until they are back, the
   * call ends, or the grace is over.
   */
  peerDropped(peerId) {
    const peer = this.peers.get(peerId);
    if (!peer || peer.away) return;
    const grace = this.client.welcome?.limits?.call_reconnect_grace_ms ?? DEFAULT_RECONNECT_GRACE_MS;
    if (!peer.user?.id || grace <= 0) {
      this.removePeer(peerId);
      return;
    }
    peer.away = true;
    peer.awayTimer = setTimeout(() => this.removePeer(peerId), grace + AWAY_MARGIN_MS);
    this.changed();
  }

  /**
   * `peer` did not connect within CONNECT_TIMEOUT_MS. With others connected (a group call)
   * only that connection goes; when nobody ever connected, the whole call cannot.
   */
  connectTimedOut(peer) {
    if (this.ended || peer.closed || peer.everConnected || peer.away) return;
    const othersUp = [...this.peers.values()].some((p) => p !== peer && p.everConnected);
    if (othersUp) {
      this.removePeer(peer.peerId);
      this.onUnreachable({ peer, all: false });
    } else {
      this.onUnreachable({ peer, all: true });
    }
  }

  /**
   * Whether this call tried to connect for about CONNECT_TIMEOUT_MS and never did: when it
   * then ends, it ended because it could not connect.
   */
  neverConnected() {
    return (
      this.firstPeerAt !== null &&
      !this.connectedAt &&
      ![...this.peers.values()].some((p) => p.everConnected) &&
      Date.now() - this.firstPeerAt >= CONNECT_TIMEOUT_MS - UNREACHABLE_MARGIN_MS
    );
  }

  removePeer(peerId) {
    const peer = this.peers.get(peerId);
    if (!peer) return;
    peer.close();
    this.peers.delete(peerId);
    this.changed();
    if (this.peers.size === 0 && this.hadPeers && !this.ended) this.onEmpty();
  }

  changed() {
    if (!this.connectedAt && [...this.peers.values()].some((p) => p.state === 'connected')) {
      this.connectedAt = Date.now();
    }
    this.onChange();
  }

  /** Mutes or unmutes the microphone; returns whether it is now muted. */
  setMuted(muted) {
    for (const track of this.localStream.getAudioTracks()) track.enabled = !muted;
    return muted;
  }

  /** Turns the camera off or on (the track keeps flowing, black, so no renegotiation). */
  setCameraOff(off) {
    for (const track of this.localStream.getVideoTracks()) track.enabled = !off;
    return off;
  }

  /** Leaves the room and releases everything: connections, camera, microphone. */
  stop() {
    if (this.ended) return;
    this.ended = true;
    this._off.forEach((off) => off());
    for (const id of [...this.peers.keys()]) {
      this.peers.get(id).close();
      this.peers.delete(id);
    }
    for (const track of this.localStream.getTracks()) track.stop();
    for (const track of this.screenStream?.getTracks() || []) track.stop();
    this.screenStream = null;
    this.client.leaveRoom(this.room);
  }
}
