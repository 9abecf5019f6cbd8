// The list of one's conversations (protocol revision 1.3): direct and group rooms, newest
// first, each with its last message and unread count. The list comes from the server on
// every (re)connect, so it survives reloads and is the same on every device; live
// `chat.message`s keep it current, `conversation.read` (from this user's other tabs) and
// `conversation.updated` (a group made or grown) too. A message from someone else in a
// conversation that is not open shows an in-app notice; opening a conversation marks it read.

import { byId, h, replaceChildren } from './dom.js';
import { icon } from './icons.js';
import { t, formatTime } from './i18n.js';

/** How long a new-message notice stays, in ms. */
const NOTICE_MS = 8000;

/** At most this many notices at once. */
const MAX_NOTICES = 3;

export class ConversationList {
  constructor(app) {
    this.app = app;
    /** room → {room, kind, members, last_message, last_read, unread} */
    this.byRoom = new Map();
    this._off = [];
  }

  /** Follows `client`: loads the list on every connect, then keeps it live. */
  attach(client) {
    this.detach();
    this.byRoom.clear();
    this.restored = false;
    this.render();
    this._off.push(
      client.on('welcome', () => this.load()),
      client.on('chat.message', (m) => this.onMessage(m)),
      client.on('conversation.read', (f) => this.onRead(f)),
      client.on('conversation.updated', (f) => this.onUpdated(f)),
    );
    // Back to the tab: what its open windows show is read now.
    const onVisible = () => {
      if (document.visibilityState !== 'visible') return;
      for (const [room, c] of this.byRoom) if (c.unread && this.app.chats.get(room)) this.markRead(room);
    };
    document.addEventListener('visibilitychange', onVisible);
    this._off.push(() => document.removeEventListener('visibilitychange', onVisible));
  }

  detach() {
    this._off.forEach((off) => off());
    this._off = [];
  }

  async load() {
    const client = this.app.client;
    if (!client) return;
    try {
      const reply = await client.conversations();
      this.byRoom = new Map((reply.conversations || []).map((c) => [c.room, c]));
    } catch (err) {
      console.warn('conversations failed', err);
      return;
    }
    // What an open window shows is read by now.
    for (const room of this.byRoom.keys()) if (this.app.chats.get(room)) this.markRead(room);
    this.render();
    if (!this.restored) {
      // After a reload, the conversations that were open in this tab open again.
      this.restored = true;
      for (const room of this.app.chats.saved()) {
        if (this.byRoom.has(room) && !this.app.chats.get(room)) this.open(room, { focus: false });
      }
    }
  }

  isConversation(room) {
    return typeof room === 'string' && (room.startsWith('dm:') || room.startsWith('group:'));
  }

  /** The people of a conversation other than me, as `{id, nickname}`. */
  others(c) {
    return (c.members || []).filter((m) => m.id !== this.app.me?.id);
  }

  title(c) {
    return this.others(c).map((m) => m.nickname).join(', ') || this.app.me?.nickname || '';
  }

  onMessage(m) {
    if (!this.isConversation(m.room)) return;
    let c = this.byRoom.get(m.room);
    if (!c) {
      // The first message of a conversation new to this page: who is in it comes with it
      // for a direct one; a group's members come with the next list.
      const members = m.room.startsWith('dm:') ? [this.app.me, m.from].filter(Boolean) : [m.from];
      c = { room: m.room, kind: m.room.startsWith('dm:') ? 'direct' : 'group', members, last_message: null, last_read: 0, unread: 0 };
      this.byRoom.set(m.room, c);
      if (c.kind === 'group') this.load();
    }
    if (c.last_message && c.last_message.msg_id >= m.msg_id) return;
    c.last_message = m;
    const mine = m.from?.id === this.app.me?.id;
    if (mine) {
      c.last_read = Math.max(c.last_read || 0, m.msg_id);
    } else if (this.isShown(m.room)) {
      this.markRead(m.room, m.msg_id);
    } else if (m.msg_id > (c.last_read || 0)) {
      c.unread = (c.unread || 0) + 1;
      this.notify(c, m);
    }
    this.render();
  }

  /** Whether the conversation is open and in view (its messages are being read). */
  isShown(room) {
    return Boolean(this.app.chats.get(room)) && document.visibilityState === 'visible';
  }

  /** Marks `room` read up to `msgId` (default: its last message) here and on the server. */
  markRead(room, msgId) {
    const c = this.byRoom.get(room);
    const upTo = msgId ?? c?.last_message?.msg_id;
    if (!upTo) return;
    if (c) {
      if ((c.last_read || 0) >= upTo && !c.unread) return;
      c.last_read = Math.max(c.last_read || 0, upTo);
      c.unread = 0;
      this.render();
    }
    this.app.client?.markRead(room, upTo).then(
      (f) => this.onRead(f),
      () => {},
    );
  }

  onRead(f) {
    const c = this.byRoom.get(f.room);
    if (!c) return;
    c.last_read = Math.max(c.last_read || 0, f.msg_id);
    c.unread = f.unread;
    this.render();
  }

  onUpdated(f) {
    const c = this.byRoom.get(f.room) || { room: f.room, kind: f.kind, last_message: null, last_read: 0, unread: 0 };
    c.members = f.members;
    c.kind = f.kind;
    this.byRoom.set(f.room, c);
    this.render();
    this.app.chats.get(f.room)?.setMembers(f.members, this.title(c));
    if (f.by?.id !== this.app.me?.id) this.notify(c, null, t('conv.added', { name: f.by?.nickname || '', names: this.title(c) }));
  }

  /** Opens the conversation's window (and marks it read). */
  async open(room, { focus = true } = {}) {
    const c = this.byRoom.get(room);
    if (!c) return null;
    const win = c.kind === 'direct'
      ? await this.app.chats.open(this.others(c)[0] || this.app.me, { focus })
      : await this.app.chats.openGroup(room, this.title(c), c.members, { focus });
    this.markRead(room);
    return win;
  }

  /** An in-app notice of a new message (or of being added to a group), with a way to open it. */
  notify(c, m, text) {
    const box = byId('toasts');
    const body = text || t('conv.new', { name: m?.from?.nickname || '', text: m?.text || '' });
    const close = h('button', { type: 'button', class: 'icon-button', 'aria-label': t('toast.close'), on: { click: () => item.remove() } }, icon('close'));
    const open = h('button', { type: 'button', class: 'small', text: t('conv.open'), on: { click: () => { item.remove(); this.open(c.room); } } });
    const item = h('div', { class: 'toast conv-notice', dataset: { room: c.room } }, h('span', { text: body }), open, close);
    box.append(item);
    setTimeout(() => item.remove(), NOTICE_MS);
    while (box.querySelectorAll('.conv-notice').length > MAX_NOTICES) box.querySelector('.conv-notice').remove();
  }

  /** All unread messages, for the section heading. */
  totalUnread() {
    let n = 0;
    for (const c of this.byRoom.values()) n += c.unread || 0;
    return n;
  }

  render() {
    const section = document.getElementById('conversations');
    if (!section) return;
    const list = [...this.byRoom.values()].sort((a, b) => (b.last_message?.msg_id || 0) - (a.last_message?.msg_id || 0));
    section.hidden = list.length === 0;
    const total = this.totalUnread();
    replaceChildren(byId('conversations-heading'), t('conv.title'), total ? h('span', { class: 'unread', text: ` (${total})` }) : null);
    replaceChildren(
      byId('conversation-list'),
      list.map((c) => {
        const name = this.title(c);
        const last = c.last_message;
        const preview = last ? `${last.from?.id === this.app.me?.id ? `${t('call.you')}: ` : c.kind === 'group' ? `${last.from?.nickname}: ` : ''}${last.text}` : '';
        const time = last ? formatTime(last.created_at) : '';
        // Named by its own text (what one sees is what a screen reader says), and the unread
        // count the badge shows, in words.
        return h('li', { class: 'conversation', dataset: { room: c.room, kind: c.kind, unread: String(c.unread || 0) } },
          h('button', { type: 'button', class: 'conversation-open', on: { click: () => this.open(c.room) } },
            icon(c.kind === 'group' ? 'user-plus' : 'text'),
            h('span', { class: 'conversation-main' },
              h('span', { class: 'conversation-name', text: name }),
              preview ? h('span', { class: 'visually-hidden', text: ' · ' }) : null,
              h('span', { class: 'conversation-last', text: preview }),
            ),
            last ? h('span', { class: 'visually-hidden', text: ' · ' }) : null,
            last ? h('time', { class: 'conversation-time', text: time }) : null,
            c.unread ? h('span', { class: 'unread-badge', 'aria-hidden': 'true', text: String(c.unread) }) : null,
            c.unread ? h('span', { class: 'visually-hidden', text: ` · ${t('conv.unread', { count: c.unread })}` }) : null,
          ),
        );
      }),
    );
  }

  translate() {
    this.render();
  }
}
