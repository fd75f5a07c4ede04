// The left column: who I am and the connection, the tabs, the one list of chats (friends
// and groups together, newest conversation first, with preview, time, unread badge,
// online dot, typing…) as every messenger has it, the groups I am in, and the forms that
// ask someone to be a friend and create or join a group.
import { api } from '../api.js';
import { byId, h, syncChildren } from '../dom.js';
import { avatar, listTime, preview } from '../format.js';
import { t } from '../i18n.js';
import { looksLikePhone } from '../phone.js';
import { GROUP, SINGLE } from '../state.js';
import { busy, clearForm, clearOnInput, showApiError, showFieldError, showOk } from './forms.js';

const TABS = ['friends', 'groups', 'profile'];

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.items = new Map(); // conversation key -> {node, signature}
    this.directory = new Map(); // group conversation key -> {node, signature}
    this.tabs = new Map(TABS.map((t) => [t, byId(`tab-${t}`)]));
    for (const [name, tab] of this.tabs) {
      tab.addEventListener('click', () => this.showTab(name));
      // ARIA tabs: arrows move between tabs, the active one is the tab stop.
      tab.addEventListener('keydown', (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 1, ArrowUp: -1 }[event.key];
        if (!step || event.altKey) return; // Alt+↑/↓ moves between conversations
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
      if (!step || event.altKey) return;
      const links = [...list.querySelectorAll('a.conv-item, a.group-link')];
      const at = links.indexOf(document.activeElement);
      const next = links[at + step];
      if (next) { event.preventDefault(); next.focus(); }
    });
  }

  /** Open the conversation `step` places from the open one in the list of chats
   * (Alt+↑/↓; friends and groups, most recent first), the first one when none is open. */
  step(step) {
    const links = [...byId('friends').querySelectorAll('a.conv-item')];
    if (!links.length) return;
    const at = links.findIndex((a) => a.dataset.key === this.app.current?.key);
    const next = at < 0 ? links[step > 0 ? 0 : links.length - 1]
      : links[Math.max(0, Math.min(links.length - 1, at + step))];
    if (next.dataset.key === this.app.current?.key) { this.app.view.focusComposer(); return; }
    location.hash = next.getAttribute('href');
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
    const chats = [...friends, ...groups].sort(byRecent);
    syncChildren(byId('friends'), chats.map((c) => this.item(c)));
    groups.sort((a, b) => this.title(a).localeCompare(this.title(b)));
    syncChildren(byId('communities'), groups.map((c) => this.groupEntry(c)));
    byId('friends-empty').hidden = chats.length > 0;
    byId('groups-empty').hidden = groups.length > 0;
    this.badge('badge-friends', chats);
  }

  /** A group in the Groups tab's directory: its name and members, a link to the chat. */
  groupEntry(conv) {
    const group = this.app.state.groups.get(conv.dstid) || { id: conv.dstid };
    const signature = JSON.stringify([this.title(conv), group.icon, group.memo]);
    const cached = this.directory.get(conv.key);
    if (cached && cached.signature === signature) return cached.node;
    const node = h('li', null, h('a', {
      class: 'group-link', href: `#/g/${conv.dstid}`, dataset: { group: String(conv.dstid) },
    }, avatar(group, { group: true }),
    h('span', { class: 'conv-main' },
      h('span', { class: 'conv-name', text: this.title(conv) }),
      group.memo ? h('span', { class: 'conv-preview', text: group.memo }) : null)));
    this.directory.set(conv.key, { node, signature });
    return node;
  }

  badge(id, convs) {
    const total = convs.reduce((n, c) => n + c.unread, 0);
    const el = byId(id);
    el.textContent = total > 99 ? '99+' : String(total);
    el.hidden = total === 0;
  }

  title(conv) {
    const { state } = this.app;
    return conv.kind === GROUP ? (state.groups.get(conv.dstid)?.name || t('group.fallback_name', { id: conv.dstid })) : state.userName(conv.dstid);
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
      line = conv.kind === GROUP ? t('typing.one', { name: state.userName(typers[0]) }) : t('typing.self');
    } else if (last) {
      line = last.userid === state.me.id ? t('preview.mine', { text: preview(last) })
        : conv.kind === GROUP ? t('preview.theirs', { name: state.userName(last.userid), text: preview(last) })
          : preview(last);
    } else {
      line = conv.kind === GROUP ? (entity?.memo || t('list.no_messages')) : (entity?.memo || t('list.say_hello'));
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
        // The dot's meaning in words (it is not carried by its colour alone).
        online === undefined ? null : h('span', { class: 'sr-only', text: online ? t('presence.online') : t('presence.offline') }),
        muted ? h('span', { class: 'conv-muted', role: 'img', 'aria-label': t('mute.muted'), text: '🔕' }) : null,
        h('time', { class: 'conv-time', text: listTime(conv.lastTs) })),
      h('span', { class: 'conv-line' },
        h('span', { class: `conv-preview${typers.length ? ' typing' : ''}`, text: line }),
        conv.unread && conv.mentions ? h('span', { class: 'badge mention-badge', role: 'img', 'aria-label': t('list.mentions', { count: conv.mentions }), text: '@' }) : null,
        conv.unread ? h('span', { class: 'badge', role: 'img', 'aria-label': t('list.unread', { count: unread }), text: unread }) : null)));
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
      if (!looksLikePhone(mobile)) {
        showFieldError(form, 'mobile', t('friends.mobile_invalid'));
        return;
      }
      busy(form, async () => {
        try {
          // The answer is the same whether or not the number has an account.
          const { status } = await api('/contact/addfriend', { dstname: mobile });
          form.reset();
          if (status === 'friends') {
            showOk(form, t('friends.now_friends'));
            await this.app.refresh('friends');
          } else {
            showOk(form, t('friends.asked'));
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
          showFieldError(form, 'name', verb === 'create' ? t('groups.name_to_create') : t('groups.name_to_join'));
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
              showFieldError(form, 'name', t('groups.join_requested'));
              return;
            }
            this.app.state.groups.set(group.id, group);
            this.app.state.conv(GROUP, group.id);
            await this.app.refresh('groups');
            location.hash = `#/g/${group.id}`;
          } catch (error) {
            if (error.status === 404) showFieldError(form, 'name', t('groups.no_such_group'));
            else showApiError(form, error, ['name'], 'name');
          }
        });
      });
    };
    submit(create, '/contact/createcommunity', 'create');
    submit(join, '/contact/joincommunity', 'join');
  }
}
