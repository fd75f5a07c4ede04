// Friend requests, in the Friends tab: those made to me (accept or decline) and those I
// made (pending until the other side accepts; a declined one looks the same, as the
// server wants). A badge on the tab counts the ones waiting for my answer. Refreshed
// at start, on every reconnect, and live when the server says a request came (cmd 70).
import { api } from '../api.js';
import { byId, h } from '../dom.js';
import { avatar } from '../format.js';
import { tn, t } from '../i18n.js';

export class RequestsPanel {
  constructor(app) {
    this.app = app;
    this.rows = [];
    this.loading = null;
  }

  /** Reload the list (at most one request at a time; a call meanwhile reloads again). */
  refresh() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        this.rows = await this.app.allPages('/contact/requests');
        this.error('');
      } catch (error) {
        this.error(error.message);
      }
      this.render();
    })().finally(() => {
      this.loading = null;
      if (this.again) { this.again = false; this.refresh(); }
    });
    return this.loading;
  }

  get incoming() { return this.rows.filter((r) => r.direction === 'in'); }

  render() {
    const incoming = this.incoming;
    const outgoing = this.rows.filter((r) => r.direction === 'out');
    byId('requests').hidden = this.rows.length === 0;
    const count = incoming.length > 99 ? '99+' : String(incoming.length);
    byId('requests-count').textContent = incoming.length ? count : '';
    const badge = byId('badge-requests');
    badge.textContent = count;
    badge.hidden = incoming.length === 0;
    badge.setAttribute('role', 'img');
    badge.setAttribute('aria-label', tn('requests.count', incoming.length, { shown: count }));
    byId('request-list').replaceChildren(...incoming.map((r) => this.item(r)),
      ...outgoing.map((r) => this.item(r)));
  }

  item(request) {
    const user = request.user;
    const name = user ? user.nickname : request.mobile;
    const incoming = request.direction === 'in';
    return h('li', { class: 'request', dataset: { requestid: String(request.id), direction: request.direction } },
      avatar(user || { id: 0, nickname: request.mobile || '?' }, { size: 'sm' }),
      h('span', { class: 'request-main' },
        h('span', { class: 'request-name', text: name }),
        h('span', { class: 'request-note', text: incoming ? t('requests.incoming') : t('requests.outgoing') })),
      incoming ? h('span', { class: 'request-buttons' },
        h('button', { type: 'button', class: 'button primary small', text: t('requests.accept'), onclick: () => this.answer(request, 'accept') }),
        h('button', { type: 'button', class: 'button small', text: t('requests.decline'), onclick: () => this.answer(request, 'decline') }))
        : null);
  }

  async answer(request, verb) {
    for (const button of document.querySelectorAll(`[data-requestid="${request.id}"] button`)) button.disabled = true;
    try {
      const friend = await api(`/contact/${verb}`, { requestid: request.id });
      if (verb === 'accept') {
        this.app.state.users.set(friend.id, friend);
        if (typeof friend.online === 'boolean') this.app.setOnline(friend.id, friend.online);
        await this.app.refresh('friends');
      }
    } catch (error) {
      this.error(error.message);
    }
    await this.refresh();
  }

  error(message) {
    const el = byId('requests-error');
    el.textContent = message;
    el.hidden = !message;
  }
}
