// Tertulia's browser app: log in or register, then the lobby (a catalogue of themes with the
// people in each, live), chats and calls. The protocol is client.js's job; this file is
// the pages around it.

import { api, ApiError, fetchDirectory, fetchThemes } from './api.js';
import { ChatDock } from './chat.js';
import { CallController } from './calls.js';
import { TertuliaClient, WINDOW } from './client.js';
import { ConversationList } from './conversations.js';
import { byId, h, replaceChildren } from './dom.js';
import { clearErrors, explain, showError } from './errors.js';
import { icon } from './icons.js';
import { Notifier } from './notify.js';
import { registerServiceWorker } from './pwa.js';
import { LANGUAGES, formatDateTime, language, onLanguageChange, setLanguage, t, translatePage } from './i18n.js';

/** Capabilities, in display order. */
const CAPS = ['video', 'audio', 'text'];

/** The widest window of a theme the server sends (protocol revision 1.2). */
const MAX_WINDOW = 200;
/** The directory is fetched whole only up to this many people (a small community). */
const DIRECTORY_MAX = 500;

/** Statuses in the order the lobby lists people. */
const STATUS_ORDER = { online: 0, busy: 1, away: 2, in_call: 3, offline: 4 };

/** How long a toast stays, in ms. */
const TOAST_MS = 6000;

/** Missed calls older than this are not listed any more. */
const MISSED_SHOWN_MS = 7 * 24 * 3600 * 1000;

/** At most this many missed calls are listed. */
const MISSED_MAX = 10;

/** After this many failed reconnects, check whether the session is still valid. */
const CHECK_SESSION_AFTER = 2;

/** A theme's description in the page's language (the neutral one when it has none). */
function describeTheme(theme) {
  return theme?.descriptions?.[language()] || theme?.description || '';
}

class App {
  constructor() {
    this.me = null;
    this.client = null;
    this.themes = [];
    /** id → user from the directory (everyone, online or not) */
    this.directory = new Map();
    this.renderQueued = false;
    this.chats = new ChatDock(this, byId('chat-dock'));
    this.calls = new CallController(this);
    this.conversations = new ConversationList(this);
    this.filters = { search: '', theme: '', cap: '', avail: 'all' };
    /** Missed calls shown in the lobby, newest first, and the ids the user dismissed. */
    this.missed = [];
    this.dismissed = new Set();
    this.notifier = new Notifier();
  }

  // ---- boot -----------------------------------------------------------------------------

  async boot() {
    translatePage();
    this.renderLangButton();
    onLanguageChange(() => this.onLanguage());
    byId('lang-button').addEventListener('click', () => {
      const next = LANGUAGES[(LANGUAGES.indexOf(language()) + 1) % LANGUAGES.length];
      setLanguage(next);
    });
    this.wireAuth();
    this.wireLobby();
    this.wireNotifications();
    registerServiceWorker();
    try {
      const me = await api('GET', '/api/me');
      await this.enter(me);
    } catch (err) {
      this.showAuth(err instanceof ApiError && err.code === 'network' ? t('error.network') : '');
    }
  }

  onLanguage() {
    translatePage();
    this.renderLangButton();
    this.renderThemeChoices();
    this.renderCapChoices();
    if (this.me) {
      this.renderHeader();
      this.renderFilters();
      this.renderMissed();
      this.queueRender();
      this.chats.translate();
      this.conversations.translate();
      this.calls.translate();
      this.renderConn();
    }
  }

  renderLangButton() {
    const b = byId('lang-button');
    replaceChildren(b, icon('globe'), h('span', { text: t('lang.switch') }));
    b.setAttribute('aria-label', t('lang.switch.label'));
    b.setAttribute('lang', language() === 'en' ? 'pt-BR' : 'en');
  }

  focusMain() {
    const lobby = byId('lobby-view');
    if (!lobby.hidden) byId('lobby-heading').focus?.();
  }

  /**
   * Notifications: permission is asked the first time the person starts a call, answers
   * one or writes a message (their own gesture, never on load); calls and messages that
   * arrive while the tab is hidden are notified (see enter()).
   */
  wireNotifications() {
    document.addEventListener('click', (e) => {
      if (e.target.closest?.('.action, #incoming-accept, .chat-form .send, [data-action=callback]')) this.notifier.askOnce();
    }, true);
    document.addEventListener('submit', (e) => {
      if (e.target.closest?.('.chat-form')) this.notifier.askOnce();
    }, true);
  }

  // ---- log in and register --------------------------------------------------------------

  wireAuth() {
    const tabs = [byId('tab-login'), byId('tab-register')];
    const select = (tab) => {
      for (const other of tabs) {
        const on = other === tab;
        other.setAttribute('aria-selected', on ? 'true' : 'false');
        other.tabIndex = on ? 0 : -1;
        byId(other.getAttribute('aria-controls')).hidden = !on;
      }
      tab.focus();
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener('click', () => select(tab));
      tab.addEventListener('keydown', (e) => {
        if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
          e.preventDefault();
          select(tabs[(i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length]);
        }
      });
    });
    byId('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.login();
    });
    byId('register-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.register();
    });
    byId('logout-button').addEventListener('click', () => this.logout());
    byId('profile-button').addEventListener('click', () => this.openProfile());
    byId('profile-cancel').addEventListener('click', () => byId('profile-dialog').close());
    byId('profile-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveProfile();
    });
  }

  async loadThemes() {
    try {
      this.themes = await fetchThemes();
      this.themesError = false;
    } catch {
      this.themes = [];
      this.themesError = true;
    }
    this.renderThemeChoices();
  }

  /** Theme checkboxes (with descriptions) in the register, login and profile forms. */
  renderThemeChoices() {
    for (const [id, selected] of [
      ['register-themes', null],
      ['login-themes', this.me?.themes],
      ['profile-themes', this.me?.themes],
    ]) {
      const fieldset = byId(id);
      const keep = new Set([...fieldset.querySelectorAll('input:checked')].map((i) => i.value));
      const chosen = keep.size ? keep : new Set(selected || []);
      for (const el of [...fieldset.children]) {
        if (el.tagName !== 'LEGEND' && !el.classList.contains('hint')) el.remove();
      }
      if (!this.themes.length) {
        fieldset.append(h('p', { class: 'hint', text: this.themesError ? t('auth.themes.unavailable') : t('auth.themes.none') }));
        continue;
      }
      const grid = h('div', { class: 'choice-grid' });
      for (const theme of this.themes) {
        const inputId = `${id}-${theme.name}`.replace(/[^\w-]/g, '_');
        const descId = `${inputId}-desc`;
        grid.append(
          h('div', { class: 'choice' },
            h('input', { type: 'checkbox', id: inputId, name: 'themes', value: theme.name, checked: chosen.has(theme.name), 'aria-describedby': descId }),
            h('label', { for: inputId },
              h('span', { class: 'choice-name', text: theme.name }),
              h('span', { class: 'choice-desc', id: descId, text: describeTheme(theme) }),
              theme.followers !== null ? h('span', { class: 'choice-count', text: t('auth.followers', { n: theme.followers }) }) : null,
            ),
          ),
        );
      }
      fieldset.append(grid);
    }
  }

  /** Capability checkboxes in the register and profile forms. */
  renderCapChoices() {
    for (const [id, selected] of [['register-caps', CAPS], ['profile-caps', this.me?.capabilities || CAPS]]) {
      const fieldset = byId(id);
      const current = [...fieldset.querySelectorAll('input')];
      const chosen = current.length ? new Set(current.filter((i) => i.checked).map((i) => i.value)) : new Set(selected);
      for (const el of [...fieldset.children]) {
        if (el.tagName !== 'LEGEND' && !el.classList.contains('hint')) el.remove();
      }
      const grid = h('div', { class: 'cap-grid' });
      for (const cap of CAPS) {
        const inputId = `${id}-${cap}`;
        grid.append(
          h('div', { class: 'choice cap' },
            h('input', { type: 'checkbox', id: inputId, name: 'capabilities', value: cap, checked: chosen.has(cap) }),
            h('label', { for: inputId }, icon(cap), h('span', { text: t(`cap.${cap}.long`) })),
          ),
        );
      }
      fieldset.append(grid);
    }
  }

  checked(fieldsetId) {
    return [...byId(fieldsetId).querySelectorAll('input:checked')].map((i) => i.value);
  }

  /**
   * Runs a form's `work`; an error is shown beside the field it is about (errors.js), in
   * the page's language. `values` ({form, nickname, password}) help say which rule broke.
   */
  async withForm(form, errorEl, work, values = () => ({})) {
    const button = form.querySelector('button[type=submit]');
    clearErrors(form, errorEl);
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await work();
    } catch (err) {
      showError(form, errorEl, form.id.replace(/-form$/, ''), explain(err, values()));
    } finally {
      button.disabled = false;
      form.removeAttribute('aria-busy');
    }
  }

  async login() {
    const form = byId('login-form');
    await this.withForm(form, byId('login-error'), async () => {
      const body = { nickname: byId('login-nickname').value.trim(), password: byId('login-password').value };
      if (form.querySelector('details').open) body.themes = this.checked('login-themes');
      const res = await api('POST', '/api/login', body);
      byId('login-password').value = '';
      await this.enter(res.user);
    }, () => ({ form: 'login' }));
  }

  async register() {
    const form = byId('register-form');
    await this.withForm(form, byId('register-error'), async () => {
      const capabilities = this.checked('register-caps');
      if (!capabilities.length) throw Object.assign(new Error(t('error.caps')), { field: 'capabilities' });
      const nickname = byId('register-nickname').value.trim();
      const password = byId('register-password').value;
      await api('POST', '/api/register', { nickname, password, themes: this.checked('register-themes'), capabilities });
      const res = await api('POST', '/api/login', { nickname, password });
      byId('register-password').value = '';
      await this.enter(res.user);
    }, () => ({ form: 'register', nickname: byId('register-nickname').value, password: byId('register-password').value }));
  }

  async logout() {
    try {
      await api('POST', '/api/logout');
    } catch {
      // The session may be gone already; leaving locally is what matters.
    }
    this.leave('');
  }

  showAuth(message) {
    byId('auth-view').hidden = false;
    byId('lobby-view').hidden = true;
    for (const id of ['status-picker', 'profile-button', 'logout-button']) byId(id).hidden = true;
    byId('conn-banner').hidden = true;
    byId('login-error').textContent = message || '';
    this.loadThemes();
    this.renderCapChoices();
    byId('login-nickname').focus();
  }

  /** Ends the signed-in part of the page (logout or revoked session). */
  leave(message) {
    this.calls.hangup();
    this.chats.closeAll();
    this.conversations.detach();
    this.client?.close();
    this.client = null;
    this.me = null;
    this.directory.clear();
    this.showAuth(message);
  }

  // ---- the signed-in page ---------------------------------------------------------------

  async enter(me) {
    this.me = me;
    byId('auth-view').hidden = true;
    byId('lobby-view').hidden = false;
    for (const id of ['status-picker', 'profile-button', 'logout-button']) byId(id).hidden = false;
    this.renderHeader();
    this.loadMissed();
    const client = new TertuliaClient();
    this.client = client;
    client.on('state', (s) => {
      this.onConnState(s);
      // People may have registered while we were away.
      if (s.state === 'open' && s.resumed) this.refreshDirectory();
    });
    client.on('welcome', (w) => {
      this.me = { ...this.me, ...w.user };
      this.renderHeader();
    });
    client.on('presence', (p) => this.onPresence(p));
    client.on('transport', ({ transport }) => {
      // Which way the live connection goes: a WebSocket, or the HTTP fallback.
      const badge = byId('transport-badge');
      badge.textContent = transport === 'http' ? 'HTTP' : 'WS';
      badge.dataset.transport = transport;
      badge.title = transport === 'http' ? 'Server-Sent Events + POST' : 'WebSocket';
      badge.hidden = false;
    });
    client.on('calls.missed', (f) => {
      for (const c of f.calls || []) this.addMissed(c);
    });
    client.on('revoked', () => this.leave(t('conn.revoked')));
    this.calls.attach(client);
    // After the call prompt's own title change, so the count goes in front of it.
    client.on('call.incoming', (f) => this.notifier.call(f.from, f.media));
    client.on('chat.message', (m) => {
      if (m.from && m.from.id !== this.me?.id) this.notifier.message(m.from, m.text || '');
    });
    this.conversations.attach(client);
    await Promise.all([this.loadThemes(), this.refreshDirectory()]);
    this.renderFilters();
    this.queueRender();
    try {
      await client.connect();
    } catch (err) {
      // Not connected at all (server down or session refused): ask for a fresh login.
      this.leave(err.code === 'unauthorized' ? t('conn.revoked') : t('error.network'));
      return;
    }
    byId('lobby-heading').focus();
  }

  async refreshDirectory() {
    try {
      const users = await fetchDirectory(DIRECTORY_MAX);
      this.directory = new Map(users.map((u) => [u.id, u]));
      this.directoryComplete = users.length < DIRECTORY_MAX;
    } catch {
      // The lobby still fills from presence; offline people are then not listed.
    }
    this.queueRender();
  }

  renderHeader() {
    const me = this.me;
    if (!me) return;
    byId('lobby-heading').textContent = t('lobby.hello', { name: me.nickname });
    byId('lobby-heading').tabIndex = -1;
    const pb = byId('profile-button');
    replaceChildren(pb, icon('user'), h('span', { text: t('nav.profile') }));
    // Phones show only the icons: the name must not depend on the visible text.
    pb.setAttribute('aria-label', t('nav.profile'));
    const lb = byId('logout-button');
    replaceChildren(lb, icon('logout'), h('span', { text: t('nav.logout') }));
    lb.setAttribute('aria-label', t('nav.logout'));
    const status = this.statusOf(me.id);
    byId('my-status-dot').dataset.status = status;
    const select = byId('my-status');
    if (['online', 'busy', 'away'].includes(status)) select.value = status;
  }

  onConnState(s) {
    this.connState = s;
    this.renderConn();
    if (s.state === 'reconnecting' && s.attempt >= CHECK_SESSION_AFTER) {
      api('GET', '/api/me').catch((err) => {
        if (err.status === 401) this.leave(t('conn.revoked'));
      });
    }
  }

  renderConn() {
    const s = this.connState;
    const banner = byId('conn-banner');
    clearInterval(this.connCountdown);
    if (!s || s.state === 'open' || s.state === 'connecting' || s.state === 'closed' || s.state === 'idle') {
      banner.hidden = true;
      document.body.classList.remove('offline');
      return;
    }
    banner.hidden = false;
    document.body.classList.add('offline');
    const until = s.delay ? Date.now() + s.delay : 0;
    const show = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      byId('conn-text').textContent = left > 0 ? t('conn.reconnecting.in', { s: left }) : t('conn.reconnecting');
    };
    show();
    if (until) this.connCountdown = setInterval(show, 1000);
  }

  // ---- presence and the lobby -----------------------------------------------------------

  /** A user's live status ('offline' when the server does not list them). */
  statusOf(id) {
    return this.client?.users.get(id)?.status || 'offline';
  }

  /** Everyone we know of (directory and presence), with live status. */
  knownUsers() {
    const all = new Map();
    for (const u of this.directory.values()) all.set(u.id, { ...u, status: 'offline' });
    for (const u of this.client?.users.values() || []) {
      const base = all.get(u.id) || {};
      all.set(u.id, { ...base, ...u, status: u.status || 'offline' });
    }
    return [...all.values()].filter((u) => u.nickname);
  }

  onPresence({ changed }) {
    if (this.me && changed.includes(this.me.id)) {
      const mine = this.client.users.get(this.me.id);
      if (mine?.themes) this.me = { ...this.me, themes: mine.themes, capabilities: mine.capabilities || this.me.capabilities };
      // Themes just followed: their people come once subscribed (revision 1.2).
      for (const theme of this.me.themes || []) {
        if (!this.client.windows.has(theme) && !this.client._opened.has(theme)) this.openCard(theme);
      }
      this.renderHeader();
    }
    this.chats.refreshStatus();
    this.queueRender();
  }

  wireLobby() {
    const form = byId('filters');
    form.addEventListener('submit', (e) => e.preventDefault());
    const update = () => {
      this.filters = {
        search: byId('filter-search').value.trim().toLowerCase(),
        theme: byId('filter-theme').value,
        cap: byId('filter-cap').value,
        avail: byId('filter-avail').value,
      };
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.search(this.filters.search), 250);
      this.queueRender();
    };
    form.addEventListener('input', update);
    form.addEventListener('change', update);
    byId('my-status').addEventListener('change', (e) => {
      this.client?.setStatus(e.target.value).catch((err) => this.toast(t('error.generic', { reason: err.message })));
    });
    byId('missed-clear').addEventListener('click', () => this.dismissMissed(this.missed.map((c) => c.call_id)));
    byId('conn-retry').addEventListener('click', () => this.client?.reconnectNow());
  }

  renderFilters() {
    const select = byId('filter-theme');
    const value = select.value;
    replaceChildren(select, h('option', { value: '', text: t('lobby.filter.theme.all') }), this.themes.map((th) => h('option', { value: th.name, text: th.name })));
    select.value = value;
  }

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.renderLobby();
    });
  }

  /**
   * Renders the catalogue; keeps keyboard focus on the same control across renders.
   *
   * Presence by subscription (protocol revision 1.2): the server sends the people of the
   * themes this connection watches (its own themes, and the cards opened), a window of the
   * first 50 of each (available first, then by name; "Show more" widens it), and a count for
   * every theme. Other themes' cards show their count and open on demand. In a small
   * community (the whole directory fits one fetch) a card whose window is not full also
   * lists its offline people, as before.
   */
  renderLobby() {
    if (!this.me) return;
    const focusKey = document.activeElement?.dataset?.focusKey;
    const f = this.filters;
    const mine = new Set(this.me.themes || []);
    const client = this.client;
    const windows = client?.windows || new Map();
    const counts = client?.counts || null;
    const matches = (u) => {
      if (u.id === this.me.id) return false;
      if (f.search && !u.nickname.toLowerCase().includes(f.search)) return false;
      if (f.cap && !(u.capabilities || []).includes(f.cap)) return false;
      if (f.avail === 'online' && u.status === 'offline') return false;
      if (f.avail === 'available' && u.status !== 'online') return false;
      return true;
    };
    const known = new Map(this.knownUsers().map((u) => [u.id, u]));
    const sortPeople = (people) =>
      people.sort((a, b) => {
        const shared = (u) => (u.themes || []).filter((th) => mine.has(th)).length;
        return (
          (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9) ||
          shared(b) - shared(a) ||
          a.nickname.localeCompare(b.nickname)
        );
      });
    /** A watched theme's people: its window, and its offline people when all fit. */
    const membersOf = (name) => {
      const win = windows.get(name);
      if (!win) return null;
      const people = [...win.ids].map((id) => known.get(id)).filter((u) => u && u.status !== 'offline' && (u.themes || []).includes(name));
      if (this.directoryComplete && win.ids.size < win.limit) {
        for (const u of known.values()) {
          if (u.status === 'offline' && (u.themes || []).includes(name)) people.push(u);
        }
      }
      return sortPeople(people.filter(matches));
    };
    const onlineIn = (name) => counts?.get(name) ?? (windows.get(name)?.ids.size || 0);
    const themeNames = this.themes.map((th) => th.name);
    for (const name of [...windows.keys(), ...(counts?.keys() || [])]) if (!themeNames.includes(name)) themeNames.push(name);
    const describe = (name) => describeTheme(this.themes.find((th) => th.name === name));
    const filtered = Boolean(f.search || f.cap || f.avail !== 'all');
    const followers = (name) => this.themes.find((th) => th.name === name)?.followers;
    const cardKey = (name) => name.replace(/[^\w-]/g, '_');
    const card = (name, key) => {
      const members = membersOf(name);
      const online = onlineIn(name);
      const total = Math.max(followers(name) ?? 0, online, members?.length || 0);
      const win = windows.get(name);
      const opened = client?._opened.has(name);
      const controls = [];
      if (!win) {
        controls.push(h('button', { type: 'button', class: 'card-open', dataset: { focusKey: `${key}:open` }, on: { click: () => this.openCard(name) } }, t('lobby.card.open')));
      } else {
        if (win.ids.size >= win.limit && online > win.limit && win.limit < MAX_WINDOW) {
          controls.push(h('button', { type: 'button', class: 'card-more', dataset: { focusKey: `${key}:more` }, on: { click: () => this.openCard(name, win.limit + WINDOW) } }, t('lobby.card.more')));
        }
        if (opened && !mine.has(name)) {
          controls.push(h('button', { type: 'button', class: 'card-close', dataset: { focusKey: `${key}:close` }, on: { click: () => this.closeCard(name) } }, t('lobby.card.close')));
        }
      }
      return h('article', { class: `theme-card${mine.has(name) ? ' mine' : ''}`, dataset: { theme: key, watched: win ? 'true' : 'false' }, 'aria-labelledby': `card-${key}` },
        h('header', {},
          h('h3', { id: `card-${key}`, text: name }),
          describe(name) ? h('p', { class: 'theme-desc', text: describe(name) }) : null,
          h('p', { class: 'theme-count', text: t(total === 1 ? 'lobby.card.count.one' : 'lobby.card.count', { online, total }) }),
        ),
        members === null
          ? null
          : members.length
            ? h('ul', { class: 'people' }, members.map((u) => this.personRow(u, key)))
            : h('p', { class: 'empty', text: t(filtered ? 'lobby.card.empty.filtered' : mine.has(name) ? 'lobby.card.only_you' : 'lobby.card.empty') }),
        controls.length ? h('div', { class: 'card-controls' }, controls) : null,
      );
    };
    const wanted = (name) => !f.theme || f.theme === name;
    const yours = themeNames.filter((n) => mine.has(n) && wanted(n));
    const others = themeNames.filter((n) => !mine.has(n) && wanted(n));
    const sections = [];
    if (f.search && this.searchResults?.query === f.search) sections.push(this.renderSearch());
    if (yours.length) {
      sections.push(h('section', { class: 'theme-section', 'aria-labelledby': 'sec-yours' },
        h('h2', { id: 'sec-yours', text: t('lobby.yours') }),
        h('div', { class: 'cards' }, yours.map((n) => card(n, cardKey(n)))),
      ));
    }
    const noTheme = f.theme || !this.directoryComplete ? [] : sortPeople([...known.values()].filter((u) => !(u.themes || []).length && matches(u)));
    // The busiest themes first; themes nobody is in now fold into one quiet line.
    const lively = others.filter((n) => onlineIn(n) > 0 || windows.has(n));
    const quiet = others.filter((n) => !lively.includes(n));
    lively.sort((a, b) => onlineIn(b) - onlineIn(a) || a.localeCompare(b));
    if (lively.length || noTheme.length || quiet.length) {
      const noThemeCard = noTheme.length
        ? h('article', { class: 'theme-card', dataset: { theme: '_none' }, 'aria-labelledby': 'card-_none' },
            h('header', {},
              h('h3', { id: 'card-_none', text: t('lobby.nothemes') }),
              h('p', { class: 'theme-desc', text: t('lobby.nothemes.desc') }),
            ),
            h('ul', { class: 'people' }, noTheme.map((u) => this.personRow(u, '_none'))),
          )
        : null;
      sections.push(h('section', { class: 'theme-section', 'aria-labelledby': 'sec-others' },
        h('h2', { id: 'sec-others', text: t('lobby.others') }),
        lively.length || noTheme.length
          ? h('div', { class: 'cards' }, lively.map((n) => card(n, cardKey(n))), noThemeCard)
          : null,
        quiet.length
          ? h('div', { class: 'quiet-themes' },
              h('h3', { text: t('lobby.quiet') }),
              h('ul', {}, quiet.map((n) => h('li', { class: 'quiet-theme', title: describe(n), dataset: { theme: cardKey(n) } },
                h('span', { class: 'quiet-name', text: n }),
                h('span', { class: 'visually-hidden', text: describe(n) }),
              ))),
            )
          : null,
      ));
    }
    if (!sections.length) sections.push(h('p', { class: 'empty', text: t('lobby.empty') }));
    replaceChildren(byId('theme-sections'), sections);
    if (focusKey) document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
  }

  /** Opens (or widens) a theme's card: its people come from the server, live. */
  openCard(name, limit = WINDOW) {
    this.client?.subscribe(name, Math.min(limit, MAX_WINDOW)).then(() => this.queueRender()).catch((err) => this.toast(t('error.generic', { reason: err.message })));
  }

  /** Closes another theme's card: its people stop coming. */
  closeCard(name) {
    this.client?.unsubscribe(name).catch(() => {});
    this.queueRender();
  }

  /** Everyone online whose nickname matches the search, from the directory (not the lobby). */
  async search(query) {
    if (!query) {
      this.searchResults = null;
      this.queueRender();
      return;
    }
    try {
      const body = await api('GET', `/api/users?online=true&per_page=20&q=${encodeURIComponent(query.slice(0, 32))}`);
      if (this.filters.search !== query) return;
      this.searchResults = { query, users: body.users || [], total: body.total ?? 0 };
    } catch {
      this.searchResults = null;
    }
    this.queueRender();
  }

  /** The search's section: people online anywhere whose nickname matches. */
  renderSearch() {
    const { users, total } = this.searchResults;
    const people = users
      .filter((u) => u.id !== this.me.id)
      .map((u) => ({ ...u, status: this.client?.users.get(u.id)?.status || u.status || 'offline' }));
    return h('section', { class: 'theme-section search-results', 'aria-labelledby': 'sec-search' },
      h('h2', { id: 'sec-search', text: t('lobby.search.results', { n: total }) }),
      people.length
        ? h('ul', { class: 'people' }, people.map((u) => this.personRow(u, '_search')))
        : h('p', { class: 'empty', text: t('lobby.card.empty') }),
    );
  }

  /** One person in a theme card: status, nickname, capability icons, allowed actions. */
  personRow(u, cardKey) {
    const myCaps = this.me.capabilities || [];
    const theirCaps = u.capabilities || [];
    const both = (cap) => myCaps.includes(cap) && theirCaps.includes(cap);
    const name = u.nickname;
    const available = u.status === 'online';
    const statusText = t(`status.${u.status}`);
    const actions = [];
    const action = (kind, iconName, label, onClick, enabled) =>
      h('button', {
        type: 'button',
        class: `action action-${kind}`,
        'aria-label': label,
        title: enabled ? label : t('action.unavailable', { name, status: statusText.toLowerCase() }),
        disabled: !enabled,
        dataset: { action: kind, focusKey: `${cardKey}:${u.id}:${kind}` },
        on: { click: onClick },
      }, icon(iconName));
    if (both('video')) actions.push(action('video', 'video', t('action.video', { name }), () => this.calls.start(u, 'video'), available && !this.calls.busy));
    if (both('audio')) actions.push(action('audio', 'phone', t('action.audio', { name }), () => this.calls.start(u, 'audio'), available && !this.calls.busy));
    if (both('text')) actions.push(action('chat', 'text', t('action.chat', { name }), () => this.openChat(u), true));
    return h('li', { class: 'person', dataset: { userId: String(u.id), status: u.status, nickname: name } },
      h('span', { class: 'status-dot', dataset: { status: u.status }, 'aria-hidden': 'true' }),
      h('span', { class: 'person-main' },
        h('span', { class: 'nick', text: name }),
        h('span', { class: 'status-text', text: statusText }),
      ),
      h('span', { class: 'caps', role: 'list', 'aria-label': theirCaps.map((c) => t(`cap.${c}`)).join(', ') },
        theirCaps.map((c) => h('span', { class: `cap cap-${c}`, role: 'listitem', title: t(`cap.${c}`), dataset: { cap: c } }, icon(c), h('span', { class: 'visually-hidden', text: t(`cap.${c}`) }))),
      ),
      h('span', { class: 'actions' }, actions),
    );
  }

  // ---- chat -----------------------------------------------------------------------------

  /**
   * Opens the conversation with `user` (protocol 1.3: no invitation; what is written reaches
   * them at once, wherever they are, and waits for them if they are offline).
   */
  async openChat(user) {
    const win = await this.chats.open(user);
    if (this.statusOf(user.id) === 'offline') win.setNotice(t('chat.offline', { name: user.nickname }));
    return win;
  }

  // ---- missed calls ---------------------------------------------------------------------

  dismissedKey() {
    return `tertulia.missed-dismissed.${this.me?.id}`;
  }

  /** Missed calls: from the call log (so a new device sees them too) and live frames. */
  async loadMissed() {
    try {
      this.dismissed = new Set(JSON.parse(localStorage.getItem(this.dismissedKey()) || '[]'));
    } catch {
      this.dismissed = new Set();
    }
    this.missed = [];
    this.renderMissed();
    try {
      const log = await api('GET', '/api/calls?limit=100');
      const since = Date.now() - MISSED_SHOWN_MS;
      for (const c of log?.calls || []) {
        if (c.direction === 'incoming' && c.state === 'missed' && c.created_at >= since) {
          this.addMissed({ call_id: c.call_id, from: c.with, media: c.media, at: c.created_at });
        }
      }
    } catch {
      // The live frames still fill the list.
    }
  }

  dismissMissed(ids) {
    for (const id of ids) this.dismissed.add(id);
    try {
      localStorage.setItem(this.dismissedKey(), JSON.stringify([...this.dismissed].slice(-200)));
    } catch {
      // Not remembered across reloads; still hidden now.
    }
    this.missed = this.missed.filter((c) => !this.dismissed.has(c.call_id));
    this.renderMissed();
  }

  addMissed(call) {
    if (this.dismissed?.has(call.call_id) || this.missed.some((c) => c.call_id === call.call_id)) return;
    this.missed.push(call);
    this.missed.sort((a, b) => (b.at || 0) - (a.at || 0));
    this.missed = this.missed.slice(0, MISSED_MAX);
    this.renderMissed();
  }

  renderMissed() {
    const section = byId('missed-calls');
    section.hidden = !this.missed?.length;
    if (section.hidden) return;
    replaceChildren(
      byId('missed-list'),
      this.missed.map((c) => {
        const dismiss = () => this.dismissMissed([c.call_id]);
        const callBack = () => {
          dismiss();
          if (c.media === 'chat') this.openChat(c.from);
          else this.calls.start(c.from, c.media);
        };
        return h('li', { dataset: { callId: c.call_id } },
          icon(c.media === 'chat' ? 'text' : c.media === 'audio' ? 'phone' : 'video'),
          h('span', { class: 'missed-text', text: t('missed.item', { name: c.from.nickname, media: t(`media.${c.media}`), time: formatDateTime(c.at || Date.now()) }) }),
          h('button', { type: 'button', class: 'small', on: { click: callBack }, text: t('missed.callback') }),
          h('button', { type: 'button', class: 'link-button', on: { click: dismiss }, text: t('missed.dismiss') }),
        );
      }),
    );
  }

  // ---- profile --------------------------------------------------------------------------

  openProfile() {
    byId('profile-error').textContent = '';
    for (const id of ['profile-themes', 'profile-caps']) {
      for (const input of byId(id).querySelectorAll('input')) input.remove();
    }
    this.renderThemeChoices();
    this.renderCapChoices();
    // Show the saved choices, not leftovers from a cancelled edit.
    for (const input of byId('profile-themes').querySelectorAll('input')) input.checked = (this.me.themes || []).includes(input.value);
    for (const input of byId('profile-caps').querySelectorAll('input')) input.checked = (this.me.capabilities || []).includes(input.value);
    byId('profile-dialog').showModal();
  }

  async saveProfile() {
    const form = byId('profile-form');
    await this.withForm(form, byId('profile-error'), async () => {
      const capabilities = this.checked('profile-caps');
      if (!capabilities.length) throw new Error(t('error.caps'));
      const me = await api('PATCH', '/api/me', { themes: this.checked('profile-themes'), capabilities });
      this.me = { ...this.me, ...me };
      byId('profile-dialog').close();
      this.toast(t('profile.saved'));
      this.renderHeader();
      this.queueRender();
    });
  }

  // ---- toasts ---------------------------------------------------------------------------

  toast(text) {
    const box = byId('toasts');
    const close = h('button', { type: 'button', class: 'icon-button', 'aria-label': t('toast.close'), on: { click: () => item.remove() } }, icon('close'));
    const item = h('div', { class: 'toast' }, h('span', { text }), close);
    box.append(item);
    setTimeout(() => item.remove(), TOAST_MS);
    while (box.children.length > 4) box.firstChild.remove();
  }
}

const app = new App();
app.boot();
