// Being told while looking elsewhere: an incoming call or message while the tab is hidden
// shows a system notification (clicking it brings the tab back) and counts in the tab's
// title until one looks again. Permission is asked at a sensible moment — when the person
// first starts a call or writes a message (a gesture of theirs) — never on page load.

import { t } from './i18n.js';

/** Where a "no" to notifications is remembered, so we never ask twice. */
const ASKED_KEY = 'tertulia.notify.asked';

export class Notifier {
  constructor() {
    /** Calls and messages that came while the tab was hidden. */
    this.unseen = 0;
    /** Notifications shown and not yet clicked or dismissed. */
    this.shown = new Set();
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) this.seen();
    });
    globalThis.addEventListener?.('focus', () => this.seen());
  }

  /** Whether system notifications may be shown. */
  get allowed() {
    return 'Notification' in globalThis && Notification.permission === 'granted';
  }

  /**
   * Asks for permission once, from a user's own action (starting a call, sending a
   * message): browsers ignore or penalise a request made on load.
   */
  askOnce() {
    if (!('Notification' in globalThis) || Notification.permission !== 'default') return;
    try {
      if (localStorage.getItem(ASKED_KEY)) return;
      localStorage.setItem(ASKED_KEY, '1');
    } catch {
      // Asked again next time; still only on a gesture.
    }
    Notification.requestPermission().catch(() => {});
  }

  /** Someone is calling us. */
  call(from, media) {
    this.notify(t('notify.call', { name: from.nickname }), t(`incoming.${media}`, { name: from.nickname }), `call-${from.id}`, true);
  }

  /** A message arrived in a conversation we are not looking at. */
  message(from, text) {
    this.notify(t('notify.message', { name: from.nickname }), text.length > 140 ? `${text.slice(0, 139)}…` : text, `msg-${from.id}`, false);
  }

  /** Shows `title`/`body` if the tab is hidden; `sticky`: stays until acted on (calls). */
  notify(title, body, tag, sticky) {
    if (!document.hidden) return;
    this.unseen += 1;
    this.renderTitle();
    if (!this.allowed) return;
    try {
      const n = new Notification(title, { body, tag, renotify: true, requireInteraction: sticky, icon: '/img/icon-192.png' });
      n.onclick = () => {
        globalThis.focus?.();
        n.close();
      };
      n.onclose = () => this.shown.delete(n);
      this.shown.add(n);
    } catch (err) {
      // Some browsers (Android Chrome) only show notifications from a service worker.
      console.warn('notification not shown', err);
    }
  }

  /** The tab is looked at again: the count and the notifications go. */
  seen() {
    if (document.hidden) return;
    this.unseen = 0;
    this.renderTitle();
    for (const n of this.shown) n.close();
    this.shown.clear();
  }

  /** Puts our count in front of whatever the title says now (the call prompt changes it). */
  renderTitle() {
    const base = document.title.replace(/^\(\d+\) /, '');
    const title = this.unseen ? t('notify.unread', { n: this.unseen, title: base }) : base;
    if (document.title !== title) document.title = title;
  }
}
