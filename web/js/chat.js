// Text chat windows: one per conversation (a direct room, or a group of up to the room cap),
// docked at the bottom (full screen on a phone). History on open, older pages on scroll
// ("Load older messages" only while older ones exist), pending → delivered per message,
// typing indicator; a direct conversation's header starts a video or voice call, and any
// conversation's brings a third person in (which makes a group). A window stays open beside
// a call.

import { directRoom } from './client.js';
import { h, replaceChildren } from './dom.js';
import { icon } from './icons.js';
import { t, formatTime } from './i18n.js';

/** Messages asked for per older page. */
const PAGE = 50;

/** Messages `room.joined` holds on a first join (the server's page). */
const HISTORY_PAGE = 50;

/** At most one typing notice per this many ms. */
const TYPING_EVERY_MS = 2500;

/** A typing notice is shown this long after the last one arrived. */
const TYPING_SHOWN_MS = 4000;

/** Windows open side by side on a wide screen; older ones close beyond this. */
const MAX_WINDOWS = 3;

/** One conversation: with one person (`peer`), or a group (`group`: {room, title, members}). */
class ChatWindow {
  constructor(dock, peer, group = null) {
    this.dock = dock;
    this.app = dock.app;
    this.group = group;
    this.peer = peer || { id: null, nickname: group.title };
    this.room = group ? group.room : directRoom(this.app.me.id, peer.id);
    /** A key for element ids: the peer's id, or the group's room. */
    this.key = group ? group.room.replace(/[^a-zA-Z0-9-]/g, '-') : String(peer.id);
    /** Whether the first `room.joined` has told how much history there is. */
    this.joinedOnce = false;
    /** msg_id → <li> */
    this.byMsgId = new Map();
    /** client_msg_id → <li> (mine, until delivered) */
    this.byClientId = new Map();
    this.oldestId = null;
    this.hasMore = false;
    this.loadingOlder = false;
    this.lastTypingSent = 0;
    this.typingTimer = null;
    this._off = [];
    this.build();
  }

  build() {
    const name = this.peer.nickname;
    this.status = h('span', { class: 'status-dot', 'aria-hidden': 'true' });
    this.statusText = h('span', { class: 'visually-hidden' });
    this.heading = h('h2', { class: 'chat-title', id: `chat-h-${this.key}` });
    this.closeButton = h('button', { type: 'button', class: 'icon-button', on: { click: () => this.dock.close(this.room) } }, icon('close'));
    // From the conversation to a call (direct ones), and a third person in.
    this.videoButton = h('button', { type: 'button', class: 'icon-button chat-call', dataset: { action: 'video' }, on: { click: () => this.startCall('video') } }, icon('video'));
    this.audioButton = h('button', { type: 'button', class: 'icon-button chat-call', dataset: { action: 'audio' }, on: { click: () => this.startCall('audio') } }, icon('phone'));
    this.addButton = h('button', { type: 'button', class: 'icon-button chat-add', dataset: { action: 'add' }, 'aria-expanded': 'false', on: { click: () => this.togglePeople() } }, icon('user-plus'));
    this.people = h('ul', { class: 'chat-people', hidden: true });
    this.olderButton = h('button', { type: 'button', class: 'link-button older', hidden: true, on: { click: () => this.loadOlder() } });
    this.beginning = h('p', { class: 'chat-beginning', hidden: true });
    this.list = h('ol', { class: 'messages' });
    // The log role on the scroller: an <ol> given another role is no list for its <li>s.
    this.scroller = h('div', { class: 'chat-scroll', role: 'log', 'aria-live': 'polite', on: { scroll: () => this.onScroll() } }, this.olderButton, this.beginning, this.list);
    this.notice = h('p', { class: 'chat-notice', hidden: true });
    this.typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.input = h('textarea', { rows: '1', class: 'chat-input', maxlength: '4000', id: `chat-in-${this.key}`, on: { keydown: (e) => this.onKey(e), input: () => this.onInput() } });
    this.inputLabel = h('label', { class: 'visually-hidden', for: `chat-in-${this.key}` });
    this.sendButton = h('button', { type: 'submit', class: 'icon-button send' }, icon('send'));
    this.form = h('form', { class: 'chat-form', on: { submit: (e) => { e.preventDefault(); this.submit(); } } }, this.inputLabel, this.input, this.sendButton);
    this.el = h(
      'section',
      { class: 'chat-window', 'aria-labelledby': `chat-h-${this.key}`, dataset: this.group ? { room: this.room, kind: 'group' } : { room: this.room, peerId: String(this.peer.id), kind: 'direct' } },
      h('header', { class: 'chat-head' }, this.group ? null : this.status, this.heading, this.statusText, this.videoButton, this.audioButton, this.addButton, this.closeButton),
      this.people,
      this.scroller,
      this.notice,
      this.typingLine,
      this.form,
    );
    this.translate();
    this.updateStatus();
  }

  translate() {
    const name = this.peer.nickname;
    this.heading.textContent = name;
    this.closeButton.setAttribute('aria-label', t('chat.close', { name }));
    this.olderButton.textContent = t('chat.older');
    this.beginning.textContent = t('chat.beginning');
    this.inputLabel.textContent = t('chat.input', { name });
    this.input.setAttribute('placeholder', t('chat.input', { name }));
    this.sendButton.setAttribute('aria-label', t('chat.send'));
    this.videoButton.setAttribute('aria-label', t('action.video', { name }));
    this.audioButton.setAttribute('aria-label', t('action.audio', { name }));
    this.addButton.setAttribute('aria-label', t('conv.add'));
    this.addButton.setAttribute('title', t('conv.add'));
    if (!this.people.hidden) this.renderPeople();
    this.list.setAttribute('aria-label', t('chat.log'));
    for (const li of this.list.children) this.renderState(li);
  }

  updateStatus() {
    if (this.group) {
      // A group call rings whoever of them is online and able; the button needs the means.
      const me = this.app.me?.capabilities || [];
      this.videoButton.hidden = !me.includes('video');
      this.audioButton.hidden = !me.includes('audio');
      for (const b of [this.videoButton, this.audioButton]) b.disabled = this.app.calls.busy;
      return;
    }
    const status = this.app.statusOf(this.peer.id);
    this.status.dataset.status = status;
    this.statusText.textContent = t(`status.${status}`);
    // A call needs both to have the means and them to be free; chatting never changes that.
    const me = this.app.me?.capabilities || [];
    const them = this.app.directory.get(this.peer.id)?.capabilities || this.app.client?.users?.get(this.peer.id)?.capabilities || [];
    for (const [button, cap] of [[this.videoButton, 'video'], [this.audioButton, 'audio']]) {
      button.hidden = !(me.includes(cap) && them.includes(cap));
      button.disabled = status !== 'online' || this.app.calls.busy;
    }
  }

  async startCall(media) {
    if (!this.group) {
      this.app.calls.start(this.peer, media);
      return;
    }
    // A group: call the first of them who can take it, then bring the others into the call
    // once it runs (as the call's own "invite" does).
    const users = this.app.client?.users;
    const able = this.group.members
      .filter((m) => m.id !== this.app.me.id)
      .map((m) => users?.get(m.id))
      .filter((u) => u && u.status === 'online' && (u.capabilities || []).includes(media));
    if (!able.length) {
      this.setNotice(t('conv.call.nobody'));
      return;
    }
    const [first, ...rest] = able;
    const c = this.app.client;
    const off = [];
    const stop = () => off.splice(0).forEach((f) => f());
    off.push(
      c.on('call.accepted', (f) => {
        off.push(c.on('room.joined', (j) => {
          if (j.room !== f.room) return;
          stop();
          for (const u of rest) this.app.calls.inviteIntoCall(u);
        }));
      }),
      ...['call.declined', 'call.missed', 'call.cancelled'].map((type) => c.on(type, stop)),
    );
    setTimeout(stop, (c.welcome?.limits?.ring_timeout_ms || 30_000) + 10_000);
    await this.app.calls.start(first, media);
  }

  /** A group's members changed (someone was brought in). */
  setMembers(members, title) {
    if (!this.group) return;
    this.group.members = members;
    this.group.title = title;
    this.peer.nickname = title;
    this.translate();
  }

  /** The people who can be brought into this conversation: online, can chat, not in it. */
  togglePeople(on = this.people.hidden) {
    this.people.hidden = !on;
    this.addButton.setAttribute('aria-expanded', on ? 'true' : 'false');
    if (on) this.renderPeople();
  }

  renderPeople() {
    const inIt = new Set(this.group ? this.group.members.map((m) => m.id) : [this.app.me.id, this.peer.id]);
    const users = [...(this.app.client?.users?.values() || [])]
      .filter((u) => !inIt.has(u.id) && u.status !== 'offline' && (u.capabilities || []).includes('text'))
      .sort((a, b) => a.nickname.localeCompare(b.nickname));
    replaceChildren(
      this.people,
      users.length
        ? users.map((u) => h('li', {}, h('button', { type: 'button', class: 'small', text: t('conv.add.person', { name: u.nickname }), on: { click: () => this.addPerson(u) } })))
        : h('li', { class: 'hint', text: t('conv.add.nobody') }),
    );
  }

  async addPerson(user) {
    this.togglePeople(false);
    try {
      const updated = await this.app.client.inviteToConversation(this.room, user.id);
      this.app.conversations.onUpdated(updated);
      if (!this.group) {
        await this.app.conversations.open(updated.room);
      }
    } catch (err) {
      this.setNotice(t('chat.unavailable', { reason: err.message }));
    }
  }

  async open() {
    const c = this.app.client;
    this._off.push(
      c.on('room.joined', (f) => {
        if (f.room !== this.room) return;
        this.addMessages(f.messages);
        if (!this.joinedOnce) {
          this.joinedOnce = true;
          this.learnHistory(f.messages.length);
        }
        this.app.conversations?.markRead(this.room);
      }),
      // The rest of what was missed while away (more than room.joined holds), page by page.
      c.on('chat.missed', (f) => {
        if (f.room !== this.room) return;
        this.addMessages(f.messages);
        if (f.error) this.setNotice(t('chat.unavailable', { reason: f.error.message || f.error.code || '' }));
      }),
      c.on('chat.message', (m) => {
        if (m.room === this.room) {
          this.addMessages([m]);
          if (m.from?.id === this.peer.id || this.group) this.showTyping(false);
        }
      }),
      c.on('chat.pending', (p) => {
        if (p.room === this.room) this.addPending(p);
      }),
      c.on('chat.delivered', (d) => {
        if (d.room === this.room) this.markDelivered(d);
      }),
      c.on('chat.failed', (f) => {
        if (f.room !== this.room) return;
        const li = this.byClientId.get(f.client_msg_id);
        if (li) {
          li.dataset.state = 'failed';
          li.dataset.reason = f.error?.message || f.error?.code || '';
          this.renderState(li);
        }
      }),
      c.on('chat.typing', (f) => {
        if (f.room === this.room && f.from?.id !== this.app.me.id) {
          this.typingName = f.from?.nickname;
          this.showTyping(true);
        }
      }),
      c.on('room.lost', (f) => {
        if (f.room === this.room) this.setNotice(t('chat.unavailable', { reason: f.error?.message || '' }));
      }),
    );
    try {
      await c.joinRoom(this.room);
    } catch (err) {
      if (err.code !== 'disconnected') this.setNotice(t('chat.unavailable', { reason: err.message }));
    }
  }

  /**
   * After the first join: whether older messages exist. Fewer than a page: none. A full
   * page: ask for one message before it, so the button shows only when there is one.
   */
  async learnHistory(count) {
    if (this.oldestId === null || count < HISTORY_PAGE) {
      this.showBeginning(true);
      return;
    }
    try {
      const probe = await this.app.client.history(this.room, this.oldestId, 1);
      this.showBeginning(!(probe.messages || []).length);
    } catch {
      this.showBeginning(false);
    }
  }

  setNotice(text) {
    this.notice.textContent = text || '';
    this.notice.hidden = !text;
  }

  showBeginning(on) {
    this.hasMore = !on;
    this.beginning.hidden = !on;
    this.olderButton.hidden = on;
  }

  /** Inserts messages (any order, possibly already shown) in msg_id order. */
  addMessages(messages) {
    const nearBottom = this.isNearBottom();
    for (const m of messages) {
      if (this.byMsgId.has(m.msg_id)) continue;
      let li = m.client_msg_id ? this.byClientId.get(m.client_msg_id) : null;
      if (li && m.from?.id === this.app.me.id) {
        this.byClientId.delete(m.client_msg_id);
        li.remove();
      } else {
        li = null;
      }
      li = this.renderMessage(m);
      this.byMsgId.set(m.msg_id, li);
      if (this.oldestId === null || m.msg_id < this.oldestId) this.oldestId = m.msg_id;
      // Before the first delivered message with a higher id, else before pending ones. Looked
      // for from the end: new messages (a live one, a page caught up after a reconnect)
      // belong there, so a thousand missed ones do not cost a million comparisons.
      let before = null;
      for (let other = this.list.lastElementChild; other; other = other.previousElementSibling) {
        const id = other.dataset.msgId ? Number(other.dataset.msgId) : Infinity;
        if (id < m.msg_id) break;
        before = other;
      }
      this.list.insertBefore(li, before);
    }
    if (messages.length && this.oldestId !== null) this.beginning.hidden = true;
    if (nearBottom) this.scrollToBottom();
  }

  renderMessage(m) {
    const mine = m.from?.id === this.app.me.id;
    const li = h(
      'li',
      { class: `msg ${mine ? 'mine' : 'theirs'}`, dataset: { msgId: String(m.msg_id), state: 'delivered', mine: mine ? '1' : '' } },
      h('span', { class: 'msg-author visually-hidden', text: mine ? t('call.you') : m.from?.nickname || '' }),
      h('p', { class: 'msg-text', text: m.text }),
      h('span', { class: 'msg-meta' }, h('time', { text: formatTime(m.created_at) }), h('span', { class: 'msg-state' })),
    );
    if (m.client_msg_id) li.dataset.clientMsgId = m.client_msg_id;
    this.renderState(li);
    return li;
  }

  renderState(li) {
    const state = li.querySelector('.msg-state');
    if (!state || !li.dataset.mine) return;
    const s = li.dataset.state;
    const label = s === 'pending' ? t('chat.pending') : s === 'failed' ? t('chat.failed', { reason: li.dataset.reason || '' }) : t('chat.delivered');
    replaceChildren(state, icon(s === 'pending' ? 'clock' : s === 'failed' ? 'alert' : 'check'), h('span', { class: s === 'failed' ? '' : 'visually-hidden', text: label }));
    state.setAttribute('title', label);
  }

  addPending(p) {
    if (this.byClientId.has(p.client_msg_id)) return;
    const li = h(
      'li',
      { class: 'msg mine', dataset: { clientMsgId: p.client_msg_id, state: 'pending', mine: '1' } },
      h('span', { class: 'msg-author visually-hidden', text: t('call.you') }),
      h('p', { class: 'msg-text', text: p.text }),
      h('span', { class: 'msg-meta' }, h('time', { text: formatTime(Date.now()) }), h('span', { class: 'msg-state' })),
    );
    this.renderState(li);
    this.byClientId.set(p.client_msg_id, li);
    this.list.append(li);
    this.scrollToBottom();
  }

  markDelivered(d) {
    const li = this.byClientId.get(d.client_msg_id);
    if (!li) return;
    this.byClientId.delete(d.client_msg_id);
    if (this.byMsgId.has(d.msg_id)) {
      li.remove(); // The chat.message for it came first.
      return;
    }
    li.dataset.msgId = String(d.msg_id);
    li.dataset.state = 'delivered';
    li.querySelector('time').textContent = formatTime(d.created_at);
    this.byMsgId.set(d.msg_id, li);
    this.renderState(li);
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = '';
    this.app.client.sendChat(this.room, text);
    this.input.focus();
  }

  onKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    } else if (e.key === 'Escape') {
      this.dock.close(this.room);
    }
  }

  onInput() {
    const now = Date.now();
    if (now - this.lastTypingSent > TYPING_EVERY_MS && this.input.value) {
      this.lastTypingSent = now;
      this.app.client.typing(this.room);
    }
  }

  showTyping(on) {
    clearTimeout(this.typingTimer);
    this.typingLine.textContent = on ? t('chat.typing', { name: this.typingName || this.peer.nickname }) : '';
    if (on) this.typingTimer = setTimeout(() => this.showTyping(false), TYPING_SHOWN_MS);
  }

  isNearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  onScroll() {
    if (this.scroller.scrollTop < 40) this.loadOlder();
  }

  async loadOlder() {
    if (this.loadingOlder || !this.hasMore || this.oldestId === null) return;
    this.loadingOlder = true;
    const before = this.scroller.scrollHeight;
    try {
      const reply = await this.app.client.history(this.room, this.oldestId, PAGE);
      this.addMessages(reply.messages || []);
      // Keep the reader's place: the list grew above them.
      this.scroller.scrollTop += this.scroller.scrollHeight - before;
      if (!reply.has_more) this.showBeginning(true);
    } catch (err) {
      console.warn('older messages failed', err);
    } finally {
      this.loadingOlder = false;
    }
  }

  focus() {
    this.input.focus();
  }

  destroy() {
    this._off.forEach((off) => off());
    clearTimeout(this.typingTimer);
    this.app.client.leaveRoom(this.room);
    this.el.remove();
  }
}

/** The dock of open chat windows. */
export class ChatDock {
  constructor(app, container) {
    this.app = app;
    this.container = container;
    /** room → ChatWindow */
    this.windows = new Map();
  }

  /** Where the open windows are remembered for this tab, so a reload reopens them. */
  storageKey() {
    return `tertulia.open-chats.${this.app.me?.id}`;
  }

  /** Remembers which conversations are open (this tab only: sessionStorage). */
  save() {
    try {
      sessionStorage.setItem(this.storageKey(), JSON.stringify([...this.windows.keys()]));
    } catch {
      // Not remembered across reloads; nothing else changes.
    }
  }

  /** The conversations open before a reload of this tab. */
  saved() {
    try {
      return JSON.parse(sessionStorage.getItem(this.storageKey()) || '[]');
    } catch {
      return [];
    }
  }

  /** Opens (or focuses) the chat with `peer` ({id, nickname}); returns its window. */
  async open(peer, { focus = true } = {}) {
    const room = directRoom(this.app.me.id, peer.id);
    let win = this.windows.get(room);
    if (!win) {
      win = new ChatWindow(this, peer);
      this.windows.set(room, win);
      this.container.append(win.el);
      while (this.windows.size > MAX_WINDOWS) this.close(this.windows.keys().next().value);
      this.save();
      await win.open();
    }
    if (focus) win.focus();
    return win;
  }

  /** Opens (or focuses) a group conversation's window. */
  async openGroup(room, title, members, { focus = true } = {}) {
    let win = this.windows.get(room);
    if (!win) {
      win = new ChatWindow(this, null, { room, title, members });
      this.windows.set(room, win);
      this.container.append(win.el);
      while (this.windows.size > MAX_WINDOWS) this.close(this.windows.keys().next().value);
      this.save();
      await win.open();
    }
    if (focus) win.focus();
    return win;
  }

  /** The open window for a room, if any. */
  get(room) {
    return this.windows.get(room);
  }

  close(room, { forget = true } = {}) {
    const win = this.windows.get(room);
    if (!win) return;
    this.windows.delete(room);
    if (forget) this.save();
    win.destroy();
  }

  /** Closes every window (leaving the page: logout, revoked); a reload still reopens them. */
  closeAll() {
    for (const room of [...this.windows.keys()]) this.close(room, { forget: false });
  }

  /** Presence changed: refresh the status dots. */
  refreshStatus() {
    for (const win of this.windows.values()) win.updateStatus();
  }

  translate() {
    for (const win of this.windows.values()) win.translate();
  }
}
