// LISA Chat: sign-in, the page frame, the session sidebar and the hash router.
// Views: #/ (new chat), #/chat/{sessionId}, #/library, #/usage, #/admin/models, #/admin/tokens.

import { LisaAPI, path } from './api.js';
import {
  beginOIDCSignIn, completeOIDCSignIn, forgetCredential, refreshOIDCSignIn, rememberCredential, renewalDelay, signOutURL, storedCredential,
} from './auth.js';
import { ChatView } from './chat.js';
import { ModelsView, TokensView } from './admin.js';
import { LibraryView } from './library.js';
import { UsageView } from './usage.js';
import { ask, clearNotices, download, formatTime, h, notify, replace } from './dom.js';

class App {
  constructor(root) {
    this.root = root;
    this.config = { oidc: null };
    this.credential = storedCredential();
    this.me = null;
    this.view = null;
    this.sessions = [];
    this.api = new LisaAPI(() => this.credential?.token, () => this.signedOut('Your sign-in has expired or was revoked. Please sign in again.'));
  }

  async start() {
    try {
      this.config = await this.api.get('/auth/config');
    } catch (error) {
      this.config = { oidc: null };
      notify(`Sign-in settings could not be loaded: ${error.message}`);
    }
    if (this.config.oidc) {
      try {
        const result = await completeOIDCSignIn(this.config.oidc);
        if (result) {
          rememberCredential(result.credential);
          this.credential = result.credential;
        }
      } catch (error) {
        notify(error.message);
      }
    }
    if (this.credential?.refreshToken && this.credential.expiresAt * 1000 <= Date.now()) await this.renew();
    if (this.credential && await this.loadIdentity()) {
      this.scheduleRenewal();
      this.showApp();
    } else {
      this.showSignIn();
    }
  }

  /** Renews an OIDC sign-in shortly before its ID token expires, when a refresh token allows it. */
  scheduleRenewal() {
    clearTimeout(this.renewalTimer);
    if (this.credential?.kind !== 'oidc' || !this.credential.refreshToken || !this.config.oidc) return;
    this.renewalTimer = setTimeout(async () => {
      if (await this.renew()) this.scheduleRenewal();
    }, renewalDelay(this.credential.expiresAt));
  }

  /** Swaps the refresh token for fresh tokens; false (and the reason shown) when refused. */
  async renew() {
    try {
      this.credential = await refreshOIDCSignIn(this.config.oidc, this.credential);
      return true;
    } catch (error) {
      notify(`${error.message} Please sign in again when asked.`);
      delete this.credential.refreshToken;
      return false;
    }
  }

  /** Asks the server who the credential belongs to; false (and signed out) when refused. */
  async loadIdentity() {
    try {
      this.me = await this.api.get('/whoami');
      return true;
    } catch (error) {
      if (error.status !== 401) notify(error.message);
      forgetCredential();
      this.credential = null;
      return false;
    }
  }

  /** A 401 after sign-in: the credential expired or was revoked. (During sign-in the form says so itself.) */
  signedOut(message) {
    if (!this.credential || !this.me) return;
    clearTimeout(this.renewalTimer);
    forgetCredential();
    this.credential = null;
    this.me = null;
    this.view?.unmount?.();
    this.view = null;
    this.showSignIn(message);
  }

  // MARK: sign-in

  showSignIn(message) {
    window.onhashchange = null;
    window.onfocus = null;
    const error = h('p', { class: 'form-error', role: 'alert', hidden: !message }, message ?? '');
    const token = h('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'lisa_… or the admin key', required: true, 'aria-describedby': 'token-help' });
    const remember = h('input', { id: 'remember', type: 'checkbox' });
    // With single sign-on offered, the token form is the secondary way in.
    const submit = h('button', { type: 'submit', class: this.config.oidc ? 'secondary' : 'primary' }, 'Sign in with the token');
    const form = h('form', { class: 'signin-form', 'aria-label': 'Sign in with a token' },
      h('label', { for: 'token' }, 'API token or admin key'),
      token,
      h('p', { id: 'token-help', class: 'hint' }, 'Create a token with lisactl tokens create, or ask an administrator.'),
      h('label', { class: 'check' }, remember, 'Remember me on this device'),
      submit);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      this.credential = { token: token.value.trim(), kind: 'token' };
      if (await this.loadIdentity()) {
        rememberCredential(this.credential, { persistent: remember.checked });
        this.showApp();
      } else {
        error.textContent = 'That token was not accepted. Check it and try again.';
        error.hidden = false;
        submit.disabled = false;
        token.focus();
      }
    });
    const oidc = this.config.oidc;
    const sso = oidc ? h('div', { class: 'sso' },
      h('button', {
        type: 'button', class: 'primary wide', id: 'oidc-signin',
        onclick: async () => {
          try { await beginOIDCSignIn(oidc); } catch (failure) { notify(failure.message); }
        },
      }, 'Sign in with single sign-on'),
      h('p', { class: 'hint' }, `Identity provider: ${oidc.authority}`),
      h('div', { class: 'divider' }, h('span', {}, 'or'))) : null;
    replace(this.root, h('main', { class: 'signin' },
      h('div', { class: 'signin-card' },
        h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('h1', {}, 'LISA Chat')),
        error, sso, form)));
    (oidc ? document.getElementById('oidc-signin') : token).focus();
  }

  async signOut() {
    const url = signOutURL(this.config.oidc, this.credential);
    clearTimeout(this.renewalTimer);
    forgetCredential();
    localStorage.removeItem('lisa.chat.defaults'); // the last model and repository: the next person's choice
    this.credential = null;
    this.view?.unmount?.();
    if (url) location.assign(url);
    else { location.hash = ''; this.showSignIn('You are signed out.'); }
  }

  // MARK: the frame

  showApp() {
    const me = this.me;
    const nav = h('nav', { class: 'nav', 'aria-label': 'Pages' },
      h('a', { href: '#/', 'data-view': 'chat' }, 'Chat'),
      h('a', { href: '#/library', 'data-view': 'library' }, 'Library'),
      h('a', { href: '#/usage', 'data-view': 'usage' }, 'Usage'),
      me.isAdmin ? h('a', { href: '#/admin/models', 'data-view': 'models' }, 'Models') : null,
      me.isAdmin || me.mayCreateTokens ? h('a', { href: '#/admin/tokens', 'data-view': 'tokens' }, 'API tokens') : null);
    this.sessionList = h('ul', { class: 'session-list', 'aria-label': 'Chat sessions' });
    this.sidebar = h('aside', { class: 'sidebar', id: 'sidebar', 'aria-label': 'Sessions' },
      h('button', { type: 'button', class: 'icon drawer-close', 'aria-label': 'Close sessions', onclick: () => this.closeDrawers() }, '×'),
      h('div', { class: 'sidebar-actions' },
        h('a', { class: 'button primary wide', href: '#/', id: 'new-chat', onclick: () => { this.closeDrawers(); if (location.hash === '#/' || location.hash === '') this.route(true); } }, '+ New chat')),
      h('h2', { class: 'sidebar-title' }, 'Sessions'),
      this.sessionList,
      h('div', { class: 'sidebar-footer' },
        h('button', { type: 'button', class: 'link danger-text', onclick: () => this.deleteAllSessions() }, 'Delete all sessions')));
    this.main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
    const menuButton = h('button', {
      type: 'button', class: 'icon menu-toggle', 'aria-label': 'Show sessions', 'aria-controls': 'sidebar', 'aria-expanded': 'false',
      onclick: () => this.toggleDrawer('sidebar', menuButton),
    }, '☰');
    replace(this.root,
      h('a', { class: 'skip-link', href: '#main', onclick: (event) => { event.preventDefault(); this.main.focus(); } }, 'Skip to content'),
      h('header', { class: 'topbar' },
        menuButton,
        h('a', { class: 'brand', href: '#/' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', {}, 'LISA Chat')),
        nav,
        h('div', { class: 'user' },
          h('span', { class: 'username', title: me.groups.length ? `Groups: ${me.groups.join(', ')}` : 'No groups' },
            me.username, me.isAdmin ? h('span', { class: 'badge' }, 'admin') : null),
          h('button', { type: 'button', class: 'secondary small', onclick: () => this.signOut() }, 'Sign out'))),
      h('div', { class: 'layout' }, this.sidebar, this.main),
      h('div', { class: 'scrim', onclick: () => this.closeDrawers() }));
    window.onhashchange = () => this.route();
    // Sessions saved from another tab or device appear when this window is used again.
    window.onfocus = () => {
      if (Date.now() - (this.sessionsLoadedAt ?? 0) > 10000) this.refreshSessions();
    };
    this.refreshSessions();
    this.route();
  }

  toggleDrawer(id, button) {
    const open = !document.body.classList.contains(`${id}-open`);
    this.closeDrawers();
    document.body.classList.toggle(`${id}-open`, open);
    button?.setAttribute('aria-expanded', String(open));
  }

  closeDrawers() {
    document.body.classList.remove('sidebar-open', 'settings-open');
    for (const button of document.querySelectorAll('[aria-expanded]')) button.setAttribute('aria-expanded', 'false');
  }

  /** Shows the view the location's hash names. `force`: remount even if it is the same. */
  route(force = false) {
    const hash = location.hash.replace(/^#/, '') || '/';
    const [, first, second] = hash.split('/');
    let key;
    let make;
    if (first === 'library') {
      key = 'library';
      make = () => new LibraryView(this);
    } else if (first === 'usage') {
      key = 'usage';
      make = () => new UsageView(this);
    } else if (first === 'admin' && second === 'models') {
      key = 'models';
      make = () => new ModelsView(this);
    } else if (first === 'admin' && second === 'tokens') {
      key = 'tokens';
      make = () => new TokensView(this);
    } else {
      const sessionId = first === 'chat' && second ? decodeURIComponent(second) : null;
      key = `chat:${sessionId ?? ''}`;
      if (!force && this.view instanceof ChatView && this.view.sessionId === sessionId) return;
      make = () => new ChatView(this, sessionId);
    }
    if (!force && this.viewKey === key) return;
    this.view?.unmount?.();
    clearNotices();
    this.viewKey = key;
    this.view = make();
    for (const link of document.querySelectorAll('.nav a')) {
      const current = link.dataset.view === key.split(':')[0];
      link.classList.toggle('active', current);
      if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
    }
    this.closeDrawers();
    this.view.mount(this.main);
    this.highlightSession();
  }

  // MARK: sessions sidebar

  async refreshSessions() {
    this.sessionsLoadedAt = Date.now();
    try {
      this.sessions = await this.api.get('/session');
    } catch (error) {
      if (error.status !== 401) notify(`Sessions could not be loaded: ${error.message}`);
      return;
    }
    this.renderSessions();
  }

  renderSessions() {
    if (!this.sessionList) return;
    if (!this.sessions.length) {
      replace(this.sessionList, h('li', { class: 'empty' }, 'No sessions yet.'));
      return;
    }
    replace(this.sessionList, this.sessions.map((session) => {
      const title = session.name || session.firstHumanMessage || 'Untitled chat';
      return h('li', { class: 'session', 'data-session': session.sessionId },
        h('a', { class: 'session-link', href: `#/chat/${encodeURIComponent(session.sessionId)}`, title },
          h('span', { class: 'session-name' }, title),
          h('span', { class: 'session-time' }, formatTime(session.lastUpdated))),
        h('div', { class: 'session-actions' },
          h('button', { type: 'button', class: 'icon', 'aria-label': `Rename ${title}`, title: 'Rename', onclick: () => this.renameSession(session, title) }, '✎'),
          h('button', { type: 'button', class: 'icon', 'aria-label': `Export ${title}`, title: 'Export', onclick: () => this.exportSession(session) }, '⤓'),
          h('button', { type: 'button', class: 'icon danger-text', 'aria-label': `Delete ${title}`, title: 'Delete', onclick: () => this.deleteSession(session, title) }, '✕')));
    }));
    this.highlightSession();
  }

  highlightSession() {
    const current = this.view instanceof ChatView ? this.view.sessionId : null;
    for (const item of this.sessionList?.querySelectorAll('.session') ?? []) {
      const active = item.dataset.session === current;
      item.classList.toggle('active', active);
      const link = item.querySelector('a');
      if (active) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
    }
  }

  /** Puts `summary` first in the list (after a save), without a round trip. */
  sessionSaved(session) {
    const summary = {
      sessionId: session.sessionId, name: session.name, lastUpdated: session.lastUpdated, startTime: session.startTime,
      firstHumanMessage: session.history.find((message) => message.type === 'human')?.content?.slice(0, 200),
    };
    this.sessions = [summary, ...this.sessions.filter((item) => item.sessionId !== session.sessionId)];
    this.renderSessions();
  }

  async renameSession(session, current) {
    const name = await ask({ title: 'Rename session', confirm: 'Rename', input: { value: current, label: 'Session name' } });
    if (!name) return;
    try {
      const renamed = await this.api.put(path`/session/${session.sessionId}/name`, { name });
      session.name = renamed.name;
      this.renderSessions();
      notify('Session renamed.', 'info');
    } catch (error) {
      notify(`The session could not be renamed: ${error.message}`);
    }
  }

  async exportSession(summary) {
    try {
      const session = await this.api.get(path`/session/${summary.sessionId}`);
      const safe = (session.name || session.sessionId).replace(/[^\w.-]+/g, '-').slice(0, 60);
      download(`lisa-session-${safe}.json`, JSON.stringify(session, null, 2));
    } catch (error) {
      notify(`The session could not be exported: ${error.message}`);
    }
  }

  async deleteSession(session, title) {
    const confirmed = await ask({ title: 'Delete session?', body: `“${title}” and its messages will be deleted.`, confirm: 'Delete', danger: true });
    if (!confirmed) return;
    try {
      await this.api.delete(path`/session/${session.sessionId}`);
      this.sessions = this.sessions.filter((item) => item.sessionId !== session.sessionId);
      this.renderSessions();
      if (this.view instanceof ChatView && this.view.sessionId === session.sessionId) location.hash = '#/';
      notify('Session deleted.', 'info');
    } catch (error) {
      notify(`The session could not be deleted: ${error.message}`);
    }
  }

  async deleteAllSessions() {
    if (!this.sessions.length) return;
    const confirmed = await ask({ title: 'Delete all sessions?', body: `All ${this.sessions.length} of your sessions will be deleted.`, confirm: 'Delete all', danger: true });
    if (!confirmed) return;
    try {
      await this.api.delete('/session');
      this.sessions = [];
      this.renderSessions();
      location.hash = '#/';
      this.route(true);
    } catch (error) {
      notify(`The sessions could not be deleted: ${error.message}`);
    }
  }
}

const app = new App(document.getElementById('root'));
window.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') app.closeDrawers();
});
app.start();
