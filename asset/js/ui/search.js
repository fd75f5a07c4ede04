// Message search (GET /chat/search, docs/api.md): a box over all conversations in the
// sidebar, which the search button of an open conversation narrows to that one.
// Results show where the text matched from the server's offsets (UTF-16, as JavaScript
// counts), built as text nodes and <mark> elements: never as HTML, so a message that
// holds markup is shown as the characters it is. A click opens the conversation and
// loads older pages until the message is there, then scrolls to it. The box and the
// button are not on the page when the server seals messages at rest.
import { get } from '../api.js';
import { byId, h } from '../dom.js';
import { icon } from '../icons.js';
import { avatar, listTime } from '../format.js';
import { GROUP, SINGLE } from '../state.js';
import { errorText, t, tn } from '../i18n.js';

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const MAX_PAGES = 50; // older pages loaded at most to reach a found message

const PAGE = 20;
const CONTEXT = 24; // characters shown before the first match of a long message

/**
 * `content` as nodes with every [start, end) of `matches` in a <mark>. A long message is
 * cut to start a little before its first match (never inside a surrogate pair).
 */
export function highlighted(content, matches) {
  let from = 0;
  if (matches.length && matches[0][0] > CONTEXT + 8) {
    from = matches[0][0] - CONTEXT;
    const code = content.charCodeAt(from);
    if (code >= 0xdc00 && code <= 0xdfff) from -= 1;
  }
  const nodes = from ? ['…'] : [];
  let at = from;
  for (const [start, end] of matches) {
    if (start < at || end > content.length) continue;
    if (start > at) nodes.push(content.slice(at, start));
    nodes.push(h('mark', { text: content.slice(start, end) }));
    at = end;
  }
  if (at < content.length) nodes.push(content.slice(at));
  return nodes;
}

export class SearchPanel {
  constructor(app) {
    this.app = app;
    this.form = document.getElementById('search-form');
    if (!this.form) return; // search is off on this server
    this.input = byId('search-q');
    this.results = byId('search-results');
    this.list = byId('search-list');
    this.status = byId('search-status');
    this.more = byId('search-more');
    this.query = '';
    this.before = null;
    this.scope = null; // {cmd, dstid}: one conversation, else all
    const button = document.getElementById('conv-search');
    if (button) {
      button.append(icon('search'));
      button.addEventListener('click', () => this.narrow(this.app.current));
    }
    byId('search-scope-clear').addEventListener('click', () => {
      this.setScope(null);
      if (this.query) this.start(this.query);
      this.input.focus();
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.start(this.input.value.trim());
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.close();
    });
    this.more.addEventListener('click', () => this.load());
    byId('search-close').addEventListener('click', () => this.close());
  }

  /** Search one conversation (from its header): back to the list on a phone. */
  narrow(conv) {
    if (!conv) return;
    this.setScope({ cmd: conv.kind, dstid: conv.dstid });
    if (this.app.root.dataset.view === 'chat' && window.matchMedia('(max-width: 720px)').matches) {
      location.hash = '';
    }
    this.input.focus();
    if (this.query) this.start(this.query);
  }

  setScope(scope) {
    this.scope = scope;
    const state = this.app.state;
    let name = '';
    if (scope) {
      name = scope.cmd === GROUP ? (state.groups.get(scope.dstid)?.name || t('group.fallback_name', { id: scope.dstid }))
        : state.userName(scope.dstid);
    }
    byId('search-scope').hidden = !scope;
    byId('search-scope-text').textContent = scope ? t('search.scope_only', { name }) : '';
    byId('search-label').textContent = scope ? t('search.with_label', { name }) : t('search.all_label');
    this.input.placeholder = scope ? t('search.in_placeholder', { name }) : t('search.placeholder');
  }

  start(query) {
    if (!query) { this.close(); return; }
    this.query = query;
    this.before = null;
    this.list.replaceChildren();
    this.results.hidden = false;
    this.app.root.dataset.searching = 'true';
    this.load();
  }

  close() {
    if (!this.form) return;
    this.query = '';
    this.input.value = '';
    this.list.replaceChildren();
    this.results.hidden = true;
    this.setScope(null);
    delete this.app.root.dataset.searching;
  }

  async load() {
    const query = this.query;
    this.status.textContent = t('search.searching');
    this.more.hidden = true;
    let page;
    try {
      page = await get('/chat/search', { q: query, pagesize: PAGE, before: this.before,
        cmd: this.scope?.cmd, dstid: this.scope?.dstid });
    } catch (error) {
      if (query === this.query) this.status.textContent = errorText(error.message, error.code);
      return;
    }
    if (query !== this.query) return; // a newer search started meanwhile
    // Senders in groups who are nobody's friend are named by the group's member list.
    const state = this.app.state;
    const groups = new Set(page.rows
      .filter((m) => m.conversation.cmd === GROUP && !state.users.has(m.userid)
        && !state.members.has(m.conversation.dstid))
      .map((m) => m.conversation.dstid));
    await Promise.all([...groups].map((id) => this.app.loadMembers(id).catch(() => null)));
    if (query !== this.query) return;
    for (const message of page.rows) this.list.append(this.item(message));
    const shown = this.list.children.length;
    if (page.rows.length) this.before = page.rows[page.rows.length - 1].id;
    // A capped total means "more than total": the pages go on past it.
    this.more.hidden = page.rows.length < PAGE || (!page.totalCapped && shown >= page.total);
    let found = tn('search.found', page.total);
    if (page.totalCapped) found = t('search.found_more', { count: page.total });
    this.status.textContent = shown ? found : t('search.none', { query });
  }

  item(message) {
    const { cmd, dstid } = message.conversation;
    const state = this.app.state;
    const group = cmd === GROUP;
    const entity = group ? state.groups.get(dstid) : state.users.get(dstid);
    const title = group ? (entity?.name || t('group.fallback_name', { id: dstid })) : state.userName(dstid);
    const mine = message.userid === state.me.id;
    const href = `#/${group ? 'g' : 'u'}/${dstid}`;
    const link = h('a', {
      class: 'conv-item search-hit', href, dataset: { id: String(message.id) },
      onclick: () => { this.reveal(group ? GROUP : SINGLE, dstid, message.id); },
    },
      avatar(entity || { id: dstid, nickname: title, name: title }, { group }),
      h('span', { class: 'conv-main' },
        h('span', { class: 'conv-line' },
          h('span', { class: 'conv-name', text: title }),
          h('span', { class: 'conv-time', text: listTime(message.ts) })),
        h('span', { class: 'conv-line' },
          h('span', { class: 'conv-preview search-text' },
            mine ? t('search.by_me') : group ? t('search.by', { name: state.userName(message.userid) }) : '',
            highlighted(message.content, message.matches)))));
    return h('li', null, link);
  }

  /** Once the conversation is open: load older pages until message `id` is in it, then
   * scroll it into the middle and mark it for a moment. */
  async reveal(kind, dstid, id) {
    const app = this.app;
    const conv = app.state.conv(kind, dstid);
    for (let i = 0; i < 200 && (app.current !== conv || !conv.loaded); i++) await pause(50);
    if (app.current !== conv) return;
    const has = () => conv.messages.some((m) => m.id === id);
    for (let pages = 0; pages < MAX_PAGES && !has() && conv.hasOlder; pages++) {
      const request = app.loadOlder(conv);
      if (!request) break;
      await request;
    }
    app.invalidate('conv');
    await pause(0); // the render runs in a microtask
    if (app.current !== conv) return;
    const node = document.querySelector(`#messages li[data-id="${id}"]`);
    if (!node) return;
    node.scrollIntoView({ block: 'center' });
    node.dataset.found = 'true';
    setTimeout(() => { delete node.dataset.found; }, 3000);
  }
}
