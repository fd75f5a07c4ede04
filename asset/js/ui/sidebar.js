// The left column: who I am and the connection, the tabs, the friend and group lists
// (newest conversation first, with preview, time, unread badge, online dot, typing…),
// and the forms that ask someone to be a friend and create or join a group.
import { api } from '../api.js';
import { byId, h, syncChildren } from '../dom.js';
import { avatar, listTime, preview } from '../format.js';
import { GROUP, SINGLE } from '../state.js';
import { busy, clearForm, clearOnInput, showApiError, showFieldError, showOk } from './forms.js';

const TABS = ['friends', 'groups', 'profile'];

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.items = new Map(); // conversation key -> {node, signature}
    this.tabs = new Map(TABS.map((t) => [t, byId(`tab-${t}`)]));
    for (const [name, tab] of this.tabs) {
      tab.addEventListener('click', () => this.showTab(name));
      // ARIA tabs: arrows move between tabs, the active one is the tab stop.
      tab.addEventListener('keydown', (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 1, ArrowUp: -1 }[event.key];
        if (!step) return;
        event.preventDefault();
        this.showTab(TABS[(TABS.indexOf(name) + step + TABS.length) % TABS.length], { focusTab: true });
      });
    }
    let saved = null;
    try { saved = localStorage.getItem('fastim.tab'); } catch { /* storage disabled */ }
    this.showTab(TABS.includes(saved) ? saved : 'friends', { focus: false });
    for (const list of [byId('friends'), byId('communities')]) this.arrowKeys(list);
    this.setupAddFriend();
    this.setupGroups();
  }

  showTab(name, { focusTab = false } = {}) {
    this.app.root.dataset.tab = name;
    for (const [tabName, tab] of this.tabs) {
      const selected = tabName === name;
      tab.setAttribute('aria-selected', selected ? 'true' : 'false');
      tab.tabIndex = selected ? 0 : -1;
      byId(`panel-${tabName}`).hidden = !selected;
    }
    if (focusTab) this.tabs.get(name).focus();
    try { localStorage.setItem('fastim.tab', name); } catch { /* fine */ }
  }

  /** Up and down arrows walk a list of conversations. */
  arrowKeys(list) {
    list.addEventListener('keydown', (event) => {
      const step = { ArrowDown: 1, ArrowUp: -1 }[event.key];
      if (!step) return;
      const links = [...list.querySelectorAll('a.conv-item')];
      const at = links.indexOf(document.activeElement);
      const next = links[at + step];
      if (next) { event.preventDefault(); next.focus(); }
    });
  }

  renderMe() {
    const me = this.app.state.me;
    byId('me-avatar').replaceChildren(avatar(me, { size: 'sm' }));
    byId('me-name').textContent = me.nickname;
  }

  renderLists() {
    const { state } = this.app;
    const friends = state.friendIds.map((id) => state.conv(SINGLE, id));
    const groups = [...state.groups.keys()].map((id) => state.conv(GROUP, id));
    const byRecent = (a, b) => (b.lastTs - a.lastTs) || this.title(a).localeCompare(this.title(b));
    friends.sort(byRecent);
    groups.sort(byRecent);
    syncChildren(byId('friends'), friends.map((c) => this.item(c)));
    syncChildren(byId('communities'), groups.map((c) => this.item(c)));
    byId('friends-empty').hidden = friends.length > 0;
    byId('groups-empty').hidden = groups.length > 0;
    this.badge('badge-friends', friends);
    this.badge('badge-groups', groups);
  }

  badge(id, convs) {
    const total = convs.reduce((n, c) => n + c.unread, 0);
    const el = byId(id);
    el.textContent = total > 99 ? '99+' : String(total);
    el.hidden = total === 0;
  }

  title(conv) {
    const { state } = this.app;
    return conv.kind === GROUP ? (state.groups.get(conv.dstid)?.name || `Group ${conv.dstid}`) : state.userName(conv.dstid);
  }

  /** One list entry, rebuilt only when what it shows changed. */
  item(conv) {
    const { state } = this.app;
    const last = conv.last;
    const typers = conv.typingUsers();
    const online = conv.kind === SINGLE ? state.isOnline(conv.dstid) : undefined;
    const entity = conv.kind === GROUP ? state.groups.get(conv.dstid) : state.users.get(conv.dstid);
    let line = '';
    if (typers.length) {
      line = conv.kind === GROUP ? `${state.userName(typers[0])} is typing…` : 'typing…';
    } else if (last) {
      const who = last.userid === state.me.id ? 'You: '
        : conv.kind === GROUP ? `${state.userName(last.userid)}: ` : '';
      line = who + preview(last);
    } else {
      line = conv.kind === GROUP ? (entity?.memo || 'No messages yet') : (entity?.memo || 'Say hello 👋');
    }
    const active = this.app.current === conv;
    const muted = this.app.notify.isMuted(conv);
    const signature = JSON.stringify([this.title(conv), entity?.avatar, entity?.icon, online, line,
      typers.length > 0, conv.lastTs, conv.unread, conv.mentions, active, listTime(conv.lastTs), muted]);
    const cached = this.items.get(conv.key);
    if (cached && cached.signature === signature) return cached.node;
    const unread = conv.unread > 99 ? '99+' : String(conv.unread);
    const link = h('a', {
      class: `conv-item${active ? ' active' : ''}${conv.unread ? ' has-unread' : ''}${muted ? ' muted' : ''}`,
      href: `#/${conv.kind === GROUP ? 'g' : 'u'}/${conv.dstid}`,
      'aria-current': active ? 'page' : null,
      dataset: { key: conv.key, unread: String(conv.unread), mentions: String(conv.mentions || 0) },
    },
    avatar(entity || { id: conv.dstid }, { online, group: conv.kind === GROUP }),
    h('span', { class: 'conv-main' },
      h('span', { class: 'conv-line' },
        h('span', { class: 'conv-name', text: this.title(conv) }),
        muted ? h('span', { class: 'conv-muted', role: 'img', 'aria-label': 'muted', text: '🔕' }) : null,
        h('time', { class: 'conv-time', text: listTime(conv.lastTs) })),
      h('span', { class: 'conv-line' },
        h('span', { class: `conv-preview${typers.length ? ' typing' : ''}`, text: line }),
        conv.unread && conv.mentions ? h('span', { class: 'badge mention-badge', role: 'img', 'aria-label': `${conv.mentions} mentioning you`, text: '@' }) : null,
        conv.unread ? h('span', { class: 'badge', role: 'img', 'aria-label': `${unread} unread`, text: unread }) : null)));
    const node = h('li', null, link);
    const focused = cached && cached.node.contains(document.activeElement);
    if (cached && cached.node.isConnected) cached.node.replaceWith(node);
    if (focused) link.focus({ preventScroll: true });
    this.items.set(conv.key, { node, signature });
    return node;
  }

  setupAddFriend() {
    const form = byId('add-friend');
    clearOnInput(form);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearForm(form);
      const mobile = form.elements.namedItem('mobile').value.trim();
      if (!/^\+?[0-9]{5,15}$/.test(mobile)) {
        showFieldError(form, 'mobile', 'Enter their mobile number: 5 to 15 digits.');
        return;
      }
      busy(form, async () => {
        try {
          // The answer is the same whether or not the number has an account.
          const { status } = await api('/contact/addfriend', { dstname: mobile });
          form.reset();
          if (status === 'friends') {
            showOk(form, 'You are friends now.');
            await this.app.refresh('friends');
          } else {
            showOk(form, 'Asked. If this number uses fastim, you will be friends once they accept.');
          }
          await this.app.requests.refresh();
        } catch (error) {
          showApiError(form, error, ['mobile'], 'mobile');
        }
      });
    });
  }

  setupGroups() {
    const create = byId('create-group');
    const join = byId('join-group');
    const submit = (form, path, verb) => {
      clearOnInput(form);
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearForm(form);
        const name = form.elements.namedItem('name').value.trim();
        if (!name) {
          showFieldError(form, 'name', `Enter the name of the group to ${verb}.`);
          return;
        }
        busy(form, async () => {
          try {
            const values = verb === 'create'
              ? { name, visibility: form.elements.namedItem('visibility').value }
              : { dstname: name };
            const group = await api(path, values);
            form.reset();
            if (group.status === 'requested') {
              // The group asks for approval: nothing to open yet (cmd 71 tells us later).
              showFieldError(form, 'name', 'Asked to join: an admin of the group will answer.');
              return;
            }
            this.app.state.groups.set(group.id, group);
            this.app.state.conv(GROUP, group.id);
            await this.app.refresh('groups');
            location.hash = `#/g/${group.id}`;
          } catch (error) {
            if (error.status === 404) showFieldError(form, 'name', 'There is no group with that name.');
            else showApiError(form, error, ['name'], 'name');
          }
        });
      });
    };
    submit(create, '/contact/createcommunity', 'create');
    submit(join, '/contact/joincommunity', 'join');
  }
}
