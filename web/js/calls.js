// Calls as the user sees them: the outgoing "calling…" screen, the incoming prompt with its
// ring, the call itself (videos, mute, camera, timer, connection state, hang up) and
// inviting a third person. The media plumbing is in call.js.

import { captureMedia, CallSession, rememberDevice } from './call.js';
import { LevelMeters } from './levels.js';
import { fetchIceServers } from './api.js';
import { byId, h, replaceChildren } from './dom.js';
import { icon } from './icons.js';
import { t } from './i18n.js';
import { startRinging, stopRinging } from './sound.js';

/** How long an ended/declined/missed call screen stays before closing, in ms. */
const END_SCREEN_MS = 2500;

/** How long an emptied call waits for `call.ended` before closing on its own, in ms. */
const EMPTY_GRACE_MS = 1500;

/** How often the speaking marks are updated, in ms. */
const LEVELS_MS = 200;

/** After a `conflict` on our invite, how long to wait for their crossing invitation. */
const CROSSED_WAIT_MS = 2000;

/** Owns every call of this page: at most one active, any number ringing in. */
export class CallController {
  constructor(app) {
    this.app = app;
    /** call_id → incoming call.incoming frame (still ringing) */
    this.incoming = new Map();
    /** Our ringing invitation: {callId, to, media, room} */
    this._outgoing = null;
    /** The call we are in: {session, room, media, callIds: Set, peersSeen, muted, cameraOff} */
    this._active = null;
    /** call_id → {user, state} for people we invited into the running call */
    this.invites = new Map();
    this.timer = null;
    this.closeTimer = null;
    /**
     * Calls to end once our connection is back: invitations dropped with it (in case the
     * server had not seen it end), and calls hung up while it was down (the server would
     * otherwise hold us in them for the reconnect grace).
     */
    this.endOnResume = new Set();
    this.view = {
      root: byId('call-view'),
      heading: byId('call-heading'),
      state: byId('call-state'),
      timer: byId('call-timer'),
      notice: byId('call-notice'),
      grid: byId('call-grid'),
      controls: byId('call-controls'),
      invites: byId('call-invites'),
      invitePanel: byId('invite-panel'),
      inviteList: byId('invite-list'),
    };
    this.prompt = {
      root: byId('incoming'),
      text: byId('incoming-text'),
      accept: byId('incoming-accept'),
      decline: byId('incoming-decline'),
    };
    this.prompt.accept.addEventListener('click', () => this.acceptShown());
    this.prompt.decline.addEventListener('click', () => this.declineShown());
    this.prompt.root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.declineShown();
    });
    byId('invite-close').addEventListener('click', () => this.toggleInvitePanel(false));
    /** Camera, microphone and speaker choice, opened from the call's controls. */
    this.devicePanel = h('div', { class: 'device-panel', id: 'device-panel', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'device-heading', hidden: true });
    this.view.root.append(this.devicePanel);
    this.levels = null;
    this.localTile = null;
    this.tiles = new Map();
  }

  /** Subscribes to the client's call frames. */
  attach(client) {
    client.on('call.incoming', (f) => this.onIncoming(f));
    client.on('call.accepted', (f) => this.onAccepted(f));
    client.on('call.declined', (f) => this.onOutcome(f, 'declined'));
    client.on('call.missed', (f) => this.onMissed(f));
    client.on('call.cancelled', (f) => this.onCancelled(f));
    client.on('call.answered_elsewhere', (f) => this.dropIncoming(f.call_id));
    client.on('call.ended', (f) => this.onEnded(f));
    client.on('call.left', (f) => this.onLeft(f));
    client.on('room.lost', (f) => {
      // The call room refused us after a reconnect: the call ended while we were away.
      if (this.active && f.room === this.active.room) this.finish(t('call.lost'));
    });
    client.on('state', (s) => this.onConnection(s));
  }

  /**
   * Our WebSocket dropped or came back. A running call goes on (call.js keeps its
   * connections and rejoins its room); what only rings is settled as the server does it.
   */
  onConnection(s) {
    if (s.state === 'reconnecting') {
      // We cannot answer while offline; the server announces those still ringing again.
      for (const id of [...this.incoming.keys()]) this.dropIncoming(id);
      // The server cancels our ringing invitations when our connection ends.
      const out = this.outgoing;
      if (out) {
        if (out.callId) this.endOnResume.add(out.callId);
        this.endOutgoing(t('call.cancelled.offline'));
      }
      if (this.invites.size) {
        for (const id of this.invites.keys()) this.endOnResume.add(id);
        this.invites.clear();
        this.renderInvites();
      }
      if (this.active) this.renderCall();
    } else if (s.state === 'open' && s.resumed) {
      // A hang-up of a call that still rings is its cancel.
      for (const id of this.endOnResume) this.app.client.hangup(id).catch(() => {});
      this.endOnResume.clear();
    }
  }

  get busy() {
    return Boolean(this.active || this.outgoing);
  }

  // The lobby's call buttons depend on `busy`: a change redraws it (no presence change need
  // come with it: a declined or cancelled call changes nobody's status).
  get outgoing() {
    return this._outgoing;
  }

  set outgoing(call) {
    this._outgoing = call;
    this.app.queueRender?.();
  }

  get active() {
    return this._active;
  }

  set active(call) {
    this._active = call;
    this.app.queueRender?.();
  }

  // ---- placing a call -------------------------------------------------------------------

  /** Calls `user` ({id, nickname}) with `media` ('video' or 'audio'). */
  async start(user, media) {
    if (this.busy) return;
    // They are already calling us: answering is what the user meant.
    for (const f of this.incoming.values()) {
      if (f.from.id === user.id && !f.joining) {
        this.app.toast(t('call.crossed', { name: user.nickname }));
        this.accept(f.call_id);
        return;
      }
    }
    const out = { callId: null, to: user, media, room: null, local: null };
    this.outgoing = out;
    this.openView(media);
    this.view.heading.textContent = t('call.calling', { name: user.nickname });
    this.setState(t('call.ringing'));
    this.renderControls();
    const local = await captureMedia(media, this.app.me.capabilities);
    if (this.outgoing !== out) {
      local.stream.getTracks().forEach((tr) => tr.stop());
      return;
    }
    out.local = local;
    this.showLocal(local.stream);
    this.showMissing(local.missing);
    let ringing;
    try {
      ringing = await this.app.client.invite(user.id, media);
    } catch (err) {
      if (this.outgoing !== out) return;
      if (err.code !== 'conflict') {
        this.endOutgoing(t('call.failed', { reason: err.message }));
        this.showCrossed(user.id);
        return;
      }
      // They are calling us with other media (or they are busy): take their call if it comes.
      const crossed = await this.waitForIncomingFrom(user.id);
      if (this.outgoing !== out) return; // onIncoming took it meanwhile.
      if (crossed) {
        this.takeCrossed(crossed);
      } else {
        this.endOutgoing(t('call.busy', { name: user.nickname }));
      }
      return;
    }
    if (this.outgoing !== out) {
      // Cancelled while the invitation was on its way (a hang-up also ends it if answered).
      this.app.client.hangup(ringing.call_id).catch(() => {});
      return;
    }
    if (ringing.type === 'call.accepted') {
      // Glare: their invitation to us was ringing, so the server made ours the answer to it.
      this.outgoing = null;
      this.dropIncoming(ringing.call_id);
      this.app.toast(t('call.crossed', { name: user.nickname }));
      await this.begin(ringing.room, ringing.media || media, ringing.call_id, out.local);
      return;
    }
    out.callId = ringing.call_id;
    out.room = ringing.room;
    this.renderControls();
  }

  /** Drops our invitation in favour of theirs (calls that crossed) and answers it. */
  takeCrossed(f) {
    const out = this.outgoing;
    this.outgoing = null;
    if (out?.callId) this.app.client.cancel(out.callId).catch(() => {});
    this.app.toast(t('call.crossed', { name: f.from.nickname }));
    this.accept(f.call_id, out?.local || null, f);
  }

  /** Our invitation to `userId` failed: their crossing call, kept quiet meanwhile, may ring. */
  showCrossed(userId) {
    for (const f of this.incoming.values()) if (f.from.id === userId) f.crossed = false;
    this.hidePromptIfDone();
  }

  waitForIncomingFrom(userId) {
    for (const f of this.incoming.values()) if (f.from.id === userId) return Promise.resolve(f);
    return this.app.client
      .waitFor('call.incoming', (f) => f.from.id === userId, CROSSED_WAIT_MS)
      .catch(() => null);
  }

  cancel() {
    const out = this.outgoing;
    if (!out) return;
    if (out.callId) this.app.client.cancel(out.callId).catch(() => {});
    this.endOutgoing(null);
  }

  endOutgoing(message) {
    const out = this.outgoing;
    this.outgoing = null;
    out?.local?.stream.getTracks().forEach((tr) => tr.stop());
    this.showEnd(message);
  }

  // ---- being called ---------------------------------------------------------------------

  onIncoming(f) {
    // Late news of a call we are already in (a crossing invitation answered it).
    if (this.active?.callIds.has(f.call_id)) return;
    // Brought into a running call: its room is named after the first call, not this one.
    f.joining = Boolean(f.room) && f.room !== `call:${f.call_id}`;
    this.incoming.set(f.call_id, f);
    // A call crossing ours (glare): the server makes one invitation the answer to the
    // other, so this one stays quiet; we hear `call.accepted`, or a `conflict` for ours.
    const out = this.outgoing;
    if (out && out.to.id === f.from.id) {
      f.crossed = true;
      return;
    }
    this.showPrompt();
  }

  /** The prompt shows the oldest ringing call. */
  showPrompt() {
    const f = [...this.incoming.values()].find((x) => !x.crossed);
    const p = this.prompt;
    if (!f) {
      p.root.hidden = true;
      stopRinging();
      if (this.savedTitle) document.title = this.savedTitle;
      this.savedTitle = null;
      return;
    }
    const name = f.from.nickname;
    p.root.dataset.callId = f.call_id;
    p.root.dataset.media = f.media;
    p.text.textContent = t(f.joining ? 'incoming.join' : `incoming.${f.media}`, { name });
    p.accept.replaceChildren(icon(f.media === 'audio' ? 'audio' : 'video'), h('span', { text: t('incoming.accept') }));
    p.decline.replaceChildren(icon('hangup'), h('span', { text: t('incoming.decline') }));
    const wasHidden = p.root.hidden;
    p.root.hidden = false;
    // Seen from another tab too.
    if (!this.savedTitle) this.savedTitle = document.title;
    document.title = `☎ ${p.text.textContent}`;
    if (wasHidden) {
      this.focusBeforePrompt = document.activeElement;
      p.accept.focus();
      startRinging();
    }
  }

  dropIncoming(callId) {
    if (!this.incoming.delete(callId)) return;
    this.hidePromptIfDone();
  }

  hidePromptIfDone() {
    if (![...this.incoming.values()].some((x) => !x.crossed)) {
      this.prompt.root.hidden = true;
      if (this.savedTitle) document.title = this.savedTitle;
      this.savedTitle = null;
      stopRinging();
      if (this.focusBeforePrompt?.isConnected) this.focusBeforePrompt.focus();
    } else {
      this.showPrompt();
    }
  }

  acceptShown() {
    const id = this.prompt.root.dataset.callId;
    if (id) this.accept(id);
  }

  declineShown() {
    const id = this.prompt.root.dataset.callId;
    if (!id) return;
    this.app.client.decline(id).catch(() => {});
    this.dropIncoming(id);
  }

  /** Accepts a ringing call (`local`: media already captured for a crossed call). */
  async accept(callId, local = null, frame = null) {
    const f = this.incoming.get(callId) || frame;
    this.dropIncoming(callId);
    if (!f) return;
    if (this.active) {
      // One call at a time: leave the current one first.
      this.hangup();
    }
    this.openView(f.media);
    this.view.heading.textContent = t('call.with', { names: f.from.nickname });
    this.setState(t('peer.connecting'));
    this.pendingAccept = { callId, media: f.media, from: f.from };
    const captured = local || (await captureMedia(f.media, this.app.me.capabilities));
    if (this.pendingAccept?.callId !== callId) {
      captured.stream.getTracks().forEach((tr) => tr.stop());
      return;
    }
    this.pendingAccept.local = captured;
    this.showLocal(captured.stream);
    this.showMissing(captured.missing);
    try {
      const accepted = await this.app.client.accept(callId);
      await this.begin(accepted.room || f.room, f.media, callId, captured);
    } catch (err) {
      this.pendingAccept = null;
      captured.stream.getTracks().forEach((tr) => tr.stop());
      this.showEnd(t('call.failed', { reason: err.message }));
    }
  }

  // ---- outcomes -------------------------------------------------------------------------

  async onAccepted(f) {
    if (this.invites.has(f.call_id)) {
      this.invites.delete(f.call_id);
      this.active?.callIds.add(f.call_id);
      this.renderInvites();
      return;
    }
    const out = this.outgoing;
    if (out && out.callId === f.call_id) {
      this.outgoing = null;
      await this.begin(f.room || out.room, out.media, f.call_id, out.local);
    }
  }

  onOutcome(f, outcome) {
    const invite = this.invites.get(f.call_id);
    if (invite) {
      invite.state = outcome;
      this.renderInvites();
      setTimeout(() => {
        this.invites.delete(f.call_id);
        this.renderInvites();
      }, END_SCREEN_MS);
      return;
    }
    const out = this.outgoing;
    if (out && out.callId === f.call_id) {
      const name = out.to.nickname;
      this.endOutgoing(outcome === 'declined' ? t('call.declined', { name }) : t('call.missed.caller', { name }));
    }
  }

  onMissed(f) {
    const ringing = this.incoming.get(f.call_id);
    if (ringing?.crossed) {
      this.dropIncoming(f.call_id);
      return;
    }
    if (ringing) {
      this.dropIncoming(f.call_id);
      this.app.addMissed({ call_id: f.call_id, from: ringing.from, media: ringing.media, at: Date.now() });
      this.app.toast(t('call.missed.callee', { name: ringing.from.nickname }));
      return;
    }
    this.onOutcome(f, 'missed');
  }

  onCancelled(f) {
    const ringing = this.incoming.get(f.call_id);
    if (!ringing) return;
    this.dropIncoming(f.call_id);
    // A crossed call they dropped for ours is not news to anyone.
    if (!ringing.crossed) this.app.toast(t('call.cancelled', { name: ringing.from.nickname }));
  }

  onEnded(f) {
    const a = this.active;
    if (!a?.callIds.has(f.call_id)) return;
    // The other side's connect timer fired before ours: the same failure, the same words.
    if (a.session.neverConnected()) {
      this.finish(t('call.unreachable'), { unreachable: true });
      return;
    }
    const name = f.by?.nickname;
    // `dropped`: they did not hang up, their connection did not come back in time.
    this.finish(name ? t(f.dropped ? 'call.ended.lost' : 'call.ended.by', { name }) : t('call.ended'));
  }

  /**
   * Someone left our call and it goes on (the server says so only while two or more of us
   * remain): their tile goes at once, with a word on why. A `dropped` participant's tile
   * had been waiting, `away`, for them to come back; call.js still gives up on such a tile
   * itself a moment after the grace, but only as a safety net for a `call.left` we never
   * see (say the server restarted meanwhile): it must not wait forever on one frame.
   */
  onLeft(f) {
    const a = this.active;
    if (!a?.callIds.has(f.call_id) || !f.user) return;
    for (const [id, peer] of [...a.session.peers]) {
      if (peer.user?.id === f.user.id) a.session.removePeer(id);
    }
    this.app.toast(t(f.dropped ? 'call.left.lost' : 'call.left', { name: f.user.nickname }));
  }

  // ---- in the call ----------------------------------------------------------------------

  async begin(room, media, callId, local) {
    this.pendingAccept = null;
    const iceServers = await fetchIceServers();
    const session = new CallSession({
      client: this.app.client,
      room,
      media,
      localStream: local.stream,
      iceServers,
      fetchIceServers,
      onChange: () => this.renderCall(),
      // Everyone left: wait a moment for the server's call.ended, which says who ended it.
      onEmpty: () => {
        clearTimeout(this.emptyTimer);
        this.emptyTimer = setTimeout(() => this.finish(t('call.ended')), EMPTY_GRACE_MS);
      },
      onLost: () => this.finish(t('call.lost')),
      onUnreachable: ({ peer, all }) => {
        if (all) this.unreachable();
        else this.app.toast(t('call.unreachable.peer', { name: peer.user?.nickname || '?' }));
      },
    });
    this.active = { session, room, media, callIds: new Set([callId]), muted: false, cameraOff: false, missing: local.missing };
    this.levels = new LevelMeters();
    this.levelTimer = setInterval(() => this.renderLevels(), LEVELS_MS);
    this.showLocal(local.stream);
    this.renderControls();
    this.renderCall();
    this.timer = setInterval(() => this.renderTimer(), 1000);
    try {
      await session.start();
    } catch (err) {
      this.finish(t('call.failed', { reason: err.message }));
    }
  }

  hangup() {
    const a = this.active;
    if (!a) return;
    for (const id of a.callIds) {
      if (this.app.client.state === 'open') this.app.client.hangup(id).catch(() => {});
      else this.endOnResume.add(id);
    }
    this.finish(t('call.ended'));
  }

  /**
   * Nobody in the call could be reached (call.js gave up after CONNECT_TIMEOUT_MS): leave
   * it — which ends a call of two for the other side too — and say why, with a link to
   * the connection check page, on a screen that stays until closed.
   */
  unreachable() {
    const a = this.active;
    if (!a) return;
    for (const id of a.callIds) {
      if (this.app.client.state === 'open') this.app.client.hangup(id).catch(() => {});
      else this.endOnResume.add(id);
    }
    this.finish(t('call.unreachable'), { unreachable: true });
  }

  /**
   * Ends the call locally (after a hang-up by anyone) and shows why; `unreachable`: it
   * could not connect, so the screen offers the connection check and stays until closed.
   */
  finish(message, { unreachable = false } = {}) {
    clearTimeout(this.emptyTimer);
    const a = this.active;
    if (!a) return;
    this.active = null;
    clearInterval(this.timer);
    clearInterval(this.levelTimer);
    this.levels?.close();
    this.levels = null;
    this.devicePanel.hidden = true;
    a.session.stop();
    this.invites.clear();
    this.renderInvites();
    this.toggleInvitePanel(false);
    this.showEnd(message, { unreachable });
  }

  // ---- the view -------------------------------------------------------------------------

  openView(media) {
    clearTimeout(this.closeTimer);
    const v = this.view;
    v.root.hidden = false;
    v.root.dataset.media = media;
    v.root.dataset.phase = 'setup';
    delete v.root.dataset.ended;
    v.notice.hidden = true;
    v.timer.hidden = true;
    replaceChildren(v.grid);
    this.tiles.clear();
    this.localTile = null;
    document.body.classList.add('in-call');
  }

  closeView() {
    const v = this.view;
    v.root.hidden = true;
    replaceChildren(v.grid);
    this.tiles.clear();
    this.localTile = null;
    document.body.classList.remove('in-call');
    this.app.focusMain();
  }

  showEnd(message, { unreachable = false } = {}) {
    const v = this.view;
    if (!message) {
      this.closeView();
      return;
    }
    v.root.dataset.phase = 'ended';
    // The outcome is the heading too (not "Calling bob…" any more), and the screen can be
    // closed at once rather than waited out.
    v.heading.textContent = message;
    this.setState(message);
    replaceChildren(v.controls);
    for (const video of v.grid.querySelectorAll('video')) video.srcObject = null;
    if (unreachable) {
      v.root.dataset.ended = 'unreachable';
      for (const tile of this.tiles.values()) {
        tile.el.dataset.state = 'unreachable';
        tile.state.textContent = t('peer.unreachable');
      }
      replaceChildren(v.notice, h('a', { href: '/check.html', text: t('call.unreachable.check') }));
      v.notice.hidden = false;
      const close = h('button', { type: 'button', class: 'primary', dataset: { action: 'close' }, on: { click: () => this.closeView() } }, t('call.close'));
      replaceChildren(v.controls, close);
      close.focus();
      return;
    }
    this.app.toast(message);
    const close = h('button', { type: 'button', class: 'primary', dataset: { action: 'close' }, on: { click: () => this.closeView() } }, t('call.close'));
    replaceChildren(v.controls, close);
    close.focus();
    this.closeTimer = setTimeout(() => {
      if (!this.active && !this.outgoing && !this.pendingAccept) this.closeView();
    }, END_SCREEN_MS);
  }

  setState(text) {
    this.view.state.textContent = text;
  }

  showMissing(missing) {
    const v = this.view;
    let text = '';
    if (missing.includes('video') && missing.includes('audio')) text = t('call.nomedia');
    else if (missing.includes('video') && v.root.dataset.media === 'video') text = t('call.nocamera');
    // No microphone at all, or none chosen (they can talk only by video): say so, or their
    // calls are silent with no word why.
    else if (missing.includes('audio') || !(this.app.me.capabilities || []).includes('audio')) text = t('call.nomic');
    v.notice.textContent = text;
    v.notice.hidden = !text;
  }

  showLocal(stream) {
    if (!this.localTile) {
      this.localTile = this.makeTile('local', t('call.you'), true, this.app.me.nickname);
      this.view.grid.append(this.localTile.el);
    }
    this.setTileStream(this.localTile, stream);
  }

  makeTile(key, name, local = false, avatarName = name) {
    const video = h('video', { autoplay: true, playsinline: true, class: local ? 'mirror' : '' });
    video.muted = local;
    const avatar = h('div', { class: 'tile-avatar', 'aria-hidden': 'true', text: (avatarName || '?').slice(0, 1).toUpperCase() });
    const label = h('span', { class: 'tile-name', text: name });
    const state = h('span', { class: 'tile-state' });
    // What they cannot send (no microphone, no camera), said in words, not only greyed out.
    const note = h('span', { class: 'tile-note' });
    const el = h('figure', { class: `tile ${local ? 'local' : 'remote'}`, dataset: { peer: key } }, video, avatar, h('figcaption', {}, label, state, note));
    if (!local) this.applySpeaker(video);
    return { el, video, avatar, label, state, note };
  }

  setTileStream(tile, stream) {
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    const hasVideo = stream.getVideoTracks().some((tr) => tr.readyState === 'live' && tr.enabled && !tr.muted);
    tile.el.dataset.video = hasVideo ? 'on' : 'off';
  }

  renderCall() {
    const a = this.active;
    if (!a) return;
    const v = this.view;
    v.root.dataset.phase = 'active';
    const peers = [...a.session.peers.values()];
    if (peers.length) clearTimeout(this.emptyTimer);
    for (const [key, tile] of this.tiles) {
      const screenOf = key.endsWith(':screen') ? key.slice(0, -':screen'.length) : null;
      const gone = screenOf
        ? screenOf === 'local' ? !a.session.screenStream : !a.session.peers.get(screenOf)?.sharing
        : !a.session.peers.has(key);
      if (gone) {
        this.levels?.unwatch(key);
        tile.video.srcObject = null;
        tile.el.remove();
        this.tiles.delete(key);
      }
    }
    for (const peer of peers) {
      let tile = this.tiles.get(peer.peerId);
      if (!tile) {
        tile = this.makeTile(peer.peerId, peer.user?.nickname || '');
        this.tiles.set(peer.peerId, tile);
        v.grid.insertBefore(tile.el, this.localTile?.el || null);
      }
      tile.label.textContent = peer.user?.nickname || '';
      tile.avatar.textContent = (peer.user?.nickname || '?').slice(0, 1).toUpperCase();
      // `away`: their connection to the server dropped; the call waits for them.
      const shown = peer.away ? 'away' : peer.state;
      tile.el.dataset.state = shown;
      tile.state.textContent = t(`peer.${shown}`) || shown;
      this.setTileStream(tile, peer.stream);
      const caps = this.app.knownUsers().find((u) => u.id === peer.user?.id)?.capabilities;
      this.setTileNote(tile, caps ? { audio: caps.includes('audio'), video: a.media !== 'video' || caps.includes('video') } : null);
      this.levels?.watch(peer.peerId, peer.stream);
      if (peer.sharing) this.showScreen(`${peer.peerId}:screen`, t('call.screen.of', { name: peer.user?.nickname || '' }), peer.screen);
    }
    if (a.session.screenStream) this.showScreen('local:screen', t('call.screen.yours'), a.session.screenStream);
    if (this.localTile) {
      this.setTileStream(this.localTile, a.session.localStream);
      const mine = a.session.localStream;
      this.setTileNote(this.localTile, { audio: mine.getAudioTracks().length > 0, video: a.media !== 'video' || mine.getVideoTracks().length > 0 });
      this.levels?.watch('local', mine);
    }
    v.root.dataset.sharing = [...this.tiles.keys()].some((k) => k.endsWith(':screen')) ? 'true' : 'false';
    v.grid.dataset.count = String(v.grid.children.length);
    const names = peers.map((p) => p.user?.nickname).filter(Boolean);
    v.heading.textContent = names.length ? t('call.with', { names: names.join(', ') }) : t('call.title');
    const states = peers.map((p) => p.state);
    const away = peers.filter((p) => p.away).map((p) => p.user?.nickname).filter(Boolean);
    let overall;
    if (a.session.reconnecting) overall = t('call.reconnecting');
    else if (!peers.length) overall = t('call.waiting');
    else if (away.length) overall = t('call.peer.away', { names: away.join(', ') });
    else if (states.every((s) => s === 'connected')) overall = t('peer.connected');
    else if (states.some((s) => s === 'failed')) overall = t('peer.failed');
    else if (states.some((s) => s === 'disconnected')) overall = t('peer.disconnected');
    else overall = t('peer.connecting');
    if (a.session.reconnecting) v.root.dataset.connection = 'reconnecting';
    else v.root.dataset.connection = peers.length && !away.length && states.every((s) => s === 'connected') ? 'connected' : 'connecting';
    if (v.state.textContent !== overall) this.setState(overall);
    this.renderTimer();
  }

  /** A tile for a shared screen (`key` ends in `:screen`), first in the grid. */
  showScreen(key, name, stream) {
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = this.makeTile(key, name, false);
      tile.el.classList.add('screen');
      tile.video.classList.remove('mirror');
      tile.video.muted = true;
      this.tiles.set(key, tile);
      this.view.grid.prepend(tile.el);
    }
    tile.label.textContent = name;
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    tile.el.dataset.video = 'on';
  }

  /** Says on a tile what its person cannot send (`null`: not known). */
  setTileNote(tile, can) {
    const missing = [];
    if (can && !can.audio) missing.push(t('peer.nomic'));
    if (can && !can.video) missing.push(t('peer.nocamera'));
    tile.note.textContent = missing.join(' · ');
    tile.el.dataset.nomic = can && !can.audio ? 'true' : 'false';
  }

  /** Marks who is speaking (their tile's outline, and the word for screen readers on hover). */
  renderLevels() {
    const a = this.active;
    if (!a || !this.levels) return;
    const mark = (tile, key) => {
      const on = this.levels.speaking(key);
      if ((tile.el.dataset.speaking === 'true') !== on) tile.el.dataset.speaking = on ? 'true' : 'false';
    };
    for (const [key, tile] of this.tiles) if (!key.endsWith(':screen')) mark(tile, key);
    if (this.localTile) mark(this.localTile, 'local');
  }

  /** Plays a remote tile through the chosen speaker, where the browser allows choosing. */
  applySpeaker(video) {
    let id = '';
    try {
      id = localStorage.getItem('tertulia.device.audiooutput') || '';
    } catch {
      // No remembered choice.
    }
    if (id && typeof video.setSinkId === 'function') video.setSinkId(id).catch(() => {});
  }

  /** The camera, microphone and speaker menu (remembered for the next calls). */
  async toggleDevicePanel(show) {
    const panel = this.devicePanel;
    const open = show ?? panel.hidden;
    panel.hidden = !open;
    if (!open) return;
    const a = this.active;
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      // Listed as defaults only.
    }
    const current = (kind) => {
      const track = kind === 'videoinput' ? a?.session.localStream.getVideoTracks()[0] : kind === 'audioinput' ? a?.session.localStream.getAudioTracks()[0] : null;
      if (track) return track.getSettings?.().deviceId || '';
      try {
        return localStorage.getItem(`tertulia.device.${kind}`) || '';
      } catch {
        return '';
      }
    };
    const select = (kind, labelKey) => {
      const list = devices.filter((d) => d.kind === kind);
      if (kind === 'audiooutput' && !('setSinkId' in HTMLMediaElement.prototype)) return null;
      if (kind === 'videoinput' && a?.media !== 'video') return null;
      const id = `device-${kind}`;
      const chosen = current(kind);
      const el = h('select', { id, dataset: { kind } },
        h('option', { value: '', text: t('call.device.default') }),
        list.filter((d) => d.deviceId && d.deviceId !== 'default').map((d, i) => h('option', { value: d.deviceId, text: d.label || `${t(labelKey)} ${i + 1}`, selected: d.deviceId === chosen })),
      );
      el.addEventListener('change', () => this.chooseDevice(kind, el.value));
      return h('div', { class: 'field' }, h('label', { for: id, text: t(labelKey) }), el);
    };
    replaceChildren(panel,
      h('h3', { id: 'device-heading', text: t('call.devices') }),
      select('videoinput', 'call.device.camera'),
      select('audioinput', 'call.device.mic'),
      select('audiooutput', 'call.device.speaker'),
      h('button', { type: 'button', class: 'ghost', on: { click: () => this.toggleDevicePanel(false) }, text: t('call.invite.close') }),
    );
    panel.querySelector('select')?.focus();
  }

  async chooseDevice(kind, deviceId) {
    rememberDevice(kind, deviceId);
    const a = this.active;
    if (kind === 'audiooutput') {
      for (const tile of this.tiles.values()) this.applySpeaker(tile.video);
      return;
    }
    if (!a) return;
    try {
      await a.session.switchDevice(kind, deviceId);
      this.showLocal(a.session.localStream);
      this.renderControls();
    } catch (err) {
      this.app.toast(t('call.device.failed', { reason: err.message || err.name }));
    }
  }

  async toggleScreenShare() {
    const a = this.active;
    if (!a) return;
    if (a.session.screenStream) {
      a.session.stopScreenShare();
    } else {
      try {
        await a.session.startScreenShare();
      } catch (err) {
        // Cancelling the browser's picker is not an error worth a word.
        if (err?.name !== 'NotAllowedError' && err?.name !== 'AbortError') this.app.toast(t('call.share.failed', { reason: err.message || err.name }));
      }
    }
    this.renderControls();
    this.renderCall();
  }

  renderTimer() {
    const a = this.active;
    const v = this.view;
    if (!a?.session.connectedAt) {
      v.timer.hidden = true;
      return;
    }
    const secs = Math.floor((Date.now() - a.session.connectedAt) / 1000);
    const hh = Math.floor(secs / 3600);
    const mm = String(Math.floor((secs % 3600) / 60)).padStart(2, '0');
    const ss = String(secs % 60).padStart(2, '0');
    v.timer.hidden = false;
    v.timer.textContent = hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
    v.timer.setAttribute('datetime', `PT${secs}S`);
    v.timer.setAttribute('aria-label', `${t('call.timer')} ${v.timer.textContent}`);
  }

  controlButton(name, label, onClick, { pressed, cls = '', disabled = false, action } = {}) {
    const b = h('button', { type: 'button', class: `control ${cls}`, 'aria-label': label, title: label, disabled, dataset: { action }, on: { click: onClick } }, icon(name));
    if (pressed !== undefined) b.setAttribute('aria-pressed', pressed ? 'true' : 'false');
    return b;
  }

  renderControls() {
    const c = this.view.controls;
    const a = this.active;
    if (!a) {
      // Still ringing out (or setting up an accepted call).
      const buttons = this.outgoing ? [this.controlButton('hangup', t('call.cancel'), () => this.cancel(), { cls: 'danger', action: 'cancel' })] : [];
      replaceChildren(c, buttons);
      return;
    }
    const hasAudio = a.session.localStream.getAudioTracks().length > 0;
    const hasVideo = a.session.localStream.getVideoTracks().length > 0;
    replaceChildren(
      c,
      this.controlButton(hasAudio && !a.muted ? 'audio' : 'audio-off', !hasAudio ? t('call.mic.none') : a.muted ? t('call.unmute') : t('call.mute'), () => {
        a.muted = a.session.setMuted(!a.muted);
        this.renderControls();
      }, { pressed: a.muted, disabled: !hasAudio, action: 'mute' }),
      a.media === 'video'
        ? this.controlButton(a.cameraOff ? 'video-off' : 'video', a.cameraOff ? t('call.camera.on') : t('call.camera.off'), () => {
            a.cameraOff = a.session.setCameraOff(!a.cameraOff);
            this.renderControls();
            this.renderCall();
          }, { pressed: a.cameraOff, disabled: !hasVideo, action: 'camera' })
        : null,
      navigator.mediaDevices?.getDisplayMedia
        ? this.controlButton('screen', a.session.screenStream ? t('call.share.stop') : t('call.share'), () => this.toggleScreenShare(), { pressed: Boolean(a.session.screenStream), action: 'share' })
        : null,
      this.controlButton('settings', t('call.devices'), () => this.toggleDevicePanel(), { action: 'devices' }),
      this.app.me.capabilities?.includes('text')
        ? this.controlButton('text', t('call.chat'), () => this.openChats(), { action: 'chat' })
        : null,
      this.controlButton('user-plus', t('call.invite'), () => this.toggleInvitePanel(), { action: 'invite' }),
      this.controlButton('hangup', t('call.hangup'), () => this.hangup(), { cls: 'danger', action: 'hangup' }),
    );
  }

  /** Opens a chat beside the call with each person in it who can chat. */
  openChats() {
    const a = this.active;
    if (!a) return;
    for (const peer of a.session.peers.values()) {
      const user = this.app.knownUsers().find((u) => u.id === peer.user?.id);
      if (user && (user.capabilities || []).includes('text')) this.app.openChat(user);
    }
  }

  toggleInvitePanel(show) {
    const panel = this.view.invitePanel;
    const open = show ?? panel.hidden;
    panel.hidden = !open;
    if (open) {
      this.renderInviteList();
      (panel.querySelector('button') || panel).focus();
    }
  }

  renderInviteList() {
    const a = this.active;
    if (!a) return;
    const inCall = new Set([...a.session.peers.values()].map((p) => p.user?.id));
    const invited = new Set([...this.invites.values()].map((i) => i.user.id));
    const cap = a.media === 'video' ? 'video' : 'audio';
    const people = this.app
      .knownUsers()
      .filter((u) => u.id !== this.app.me.id && u.status === 'online' && (u.capabilities || []).includes(cap) && !inCall.has(u.id) && !invited.has(u.id))
      .sort((x, y) => x.nickname.localeCompare(y.nickname));
    const list = this.view.inviteList;
    if (!people.length) {
      replaceChildren(list, h('li', { class: 'empty', text: t('call.invite.none') }));
      return;
    }
    replaceChildren(
      list,
      people.map((u) =>
        h('li', { dataset: { userId: String(u.id) } },
          h('span', { class: 'status-dot', dataset: { status: u.status }, 'aria-hidden': 'true' }),
          h('span', { class: 'nick', text: u.nickname }),
          h('button', { type: 'button', class: 'small', 'aria-label': t('call.invite.person', { name: u.nickname }), on: { click: () => this.inviteIntoCall(u) } }, icon('user-plus'), h('span', { text: t('call.invite.add') })),
        ),
      ),
    );
  }

  async inviteIntoCall(user) {
    const a = this.active;
    if (!a) return;
    this.toggleInvitePanel(false);
    try {
      const ringing = await this.app.client.invite(user.id, a.media, a.room);
      this.invites.set(ringing.call_id, { user, state: 'ringing' });
    } catch (err) {
      this.app.toast(err.code === 'conflict' ? t('call.busy', { name: user.nickname }) : t('call.failed', { reason: err.message }));
    }
    this.renderInvites();
  }

  renderInvites() {
    replaceChildren(
      this.view.invites,
      [...this.invites.values()].map((i) => {
        const name = i.user.nickname;
        const text = i.state === 'declined' ? t('call.declined', { name }) : i.state === 'missed' ? t('call.missed.caller', { name }) : t('call.invite.ringing', { name });
        return h('li', { dataset: { state: i.state } }, text);
      }),
    );
  }

  translate() {
    if (this.active) {
      this.renderControls();
      this.renderCall();
    }
    if (!this.prompt.root.hidden) this.showPrompt();
  }
}
