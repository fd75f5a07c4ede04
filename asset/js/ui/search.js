// Message search (GET /chat/search, docs/api.md): a box over all conversations in the
// sidebar. Results show where the text matched from the server's offsets (UTF-16, as
// JavaScript counts), built as text nodes and <mark> elements: never as HTML, so a
// message that holds markup is shown as the characters it is. A click opens the
// conversation. The box is not on the page when the server seals messages at rest.
import { get } from '../api.js';
import { byId, h } from '../dom.js';
import { avatar, listTime } from '../format.js';
import { GROUP } from '../state.js';

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
    delete this.app.root.dataset.searching;
  }

  async load() {
    const query = this.query;
    this.status.textContent = 'Searching…';
    this.more.hidden = true;
    let page;
    try {
      page = await get('/chat/search', { q: query, pagesize: PAGE, before: this.before });
    } catch (error) {
      if (query === this.query) this.status.textContent = error.message;
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
    this.more.hidden = page.rows.length < PAGE || shown >= page.total;
    this.status.textContent = shown
      ? `${page.total} message${page.total === 1 ? '' : 's'} found`
      : `No message contains “${query}”.`;
  }

  item(message) {
    const { cmd, dstid } = message.conversation;
    const state = this.app.state;
    const group = cmd === GROUP;
    const entity = group ? state.groups.get(dstid) : state.users.get(dstid);
    const title = group ? (entity?.name || `Group ${dstid}`) : state.userName(dstid);
    const sender = message.userid === state.me.id ? 'You' : state.userName(message.userid);
    const href = `#/${group ? 'g' : 'u'}/${dstid}`;
    const link = h('a', { class: 'conv-item search-hit', href, dataset: { id: String(message.id) } },
      avatar(entity || { id: dstid, nickname: title, name: title }, { group }),
      h('span', { class: 'conv-main' },
        h('span', { class: 'conv-line' },
          h('span', { class: 'conv-name', text: title }),
          h('span', { class: 'conv-time', text: listTime(message.ts) })),
        h('span', { class: 'conv-line' },
          h('span', { class: 'conv-preview search-text' },
            group || sender === 'You' ? `${sender}: ` : '',
            highlighted(message.content, message.matches)))));
    return h('li', null, link);
  }
}
