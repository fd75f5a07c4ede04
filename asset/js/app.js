// The chat page: loads the user's world over REST, keeps it live over the WebSocket,
// and hands rendering to the ui/ modules. Start reading at `boot()`.
import { api, ApiError, get, setUnauthorizedHandler, upload } from './api.js';
import { ChatConnection, newCid } from './connection.js';
import { byId } from './dom.js';
import { preview } from './format.js';
import { errorText, setupLanguageSwitch, t } from './i18n.js';
import { icon } from './icons.js';
import { CHANGE_CMDS, ChatState, DELETE, FILE, GROUP, IMAGE, SINGLE, TEXT, VOICE, convKey } from './state.js';
import { Announcer } from './ui/announcer.js';
import { ConversationView } from './ui/conversation.js';
import { Notifier } from './notify.js';
import { MembersDialog } from './ui/members.js';
import { PersonDialog } from './ui/person.js';
import { ProfilePanel } from './ui/profile.js';
import { RequestsPanel } from './ui/requests.js';
import { SearchPanel } from './ui/search.js';
import { Sidebar } from './ui/sidebar.js';

const HISTORY_PAGE = 40;
const TYPING_SHOWN_FOR = 5000; // ms a "typing…" stays without a new signal
// A checkpoint sync (askSync) after this many messages and changes came live, or this
// long after the first: one page, and well within the ids the server keeps above the
// cursor (SYNC_HOLD), so it finds them all still held and sends nothing twice.
const CHECKPOINT_EVERY = 200;
const CHECKPOINT_AFTER_MS = 5 * 60 * 1000;

export class App {
  constructor() {
    this.state = new ChatState();
    this.conn = null;
    this.current = null; // the open Conversation
    this.ready = false; // the first snapshot after the first connect was handled
    this.awaitingBaseline = false; // the sync from nothing was asked, not yet answered
    this.baselineDone = false; // its answer placed the cursors (onSyncResult)
    this.syncing = null; // a sync in progress: { checkpoint }
    this.liveCount = 0; // messages and changes that came live since the last sync
    this.checkpointEvery = CHECKPOINT_EVERY;
    this.checkpointTimer = null;
    this.renderQueued = new Set();
    this.refreshing = {};
    this.changeCids = new Set(); // cids of our changes (cmd 60-63) waiting for their ack
    this.root = byId('app');
    this.announcer = new Announcer();
    this.spokenState = null; // the connection state last told to a screen reader
  }

  // -- rendering --------------------------------------------------------------------

  /** Re-render parts on the next microtask: many frames in a row render once. */
  invalidate(...parts) {
    const empty = this.renderQueued.size === 0;
    for (const p of parts) this.renderQueued.add(p);
    if (empty) {
      queueMicrotask(() => {
        const parts = new Set(this.renderQueued);
        this.renderQueued.clear();
        this.render(parts);
      });
    }
  }

  render(parts) {
    if (parts.has('lists')) this.sidebar.renderLists();
    if (parts.has('me')) { this.sidebar.renderMe(); this.profile.render(); }
    if (parts.has('conn')) this.renderConnection();
    if (parts.has('conv')) this.view.render();
    if (parts.has('lists') || parts.has('conv')) this.renderTitle();
  }

  renderTitle() {
    this.notify.renderTitle(); // the count, muted conversations left out; the favicon
  }

  renderConnection() {
    const conn = this.conn;
    const waiting = conn.outbox.items.length;
    const queued = waiting ? t('conn.queued', { count: waiting }) : '';
    let text;
    switch (conn.state) {
      case 'online': text = t('conn.online'); break;
      case 'connecting': text = t('conn.connecting'); break;
      case 'waiting-network': text = t('conn.no_network') + queued; break;
      case 'offline': {
        const seconds = Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000));
        text = t('conn.offline_retrying', { seconds }) + queued;
        break;
      }
      default: text = t('conn.disconnected');
    }
    for (const id of ['conn', 'conv-conn']) {
      const el = document.getElementById(id);
      if (!el) continue;
      el.dataset.state = conn.state;
      el.querySelector('.conn-text').textContent = text;
      const retry = el.querySelector('.conn-retry');
      if (retry) retry.hidden = conn.state !== 'offline';
    }
    this.root.dataset.conn = conn.state;
    this.announceConnection(conn.state);
  }

  /** A change of connection told once (not each second of the countdown), and only once
   * the page has been online: the first connect is not news. */
  announceConnection(state) {
    const spoken = state === 'connecting' ? this.spokenState : state;
    if (spoken === this.spokenState) return;
    const first = this.spokenState === null;
    this.spokenState = spoken;
    if (first) return;
    const text = { online: () => t('announce.online'), offline: () => t('announce.offline'),
      'waiting-network': () => t('announce.no_network') }[spoken];
    if (text) this.announcer.say(text());
  }

  /** A message that just arrived from someone else, said once (never history or sync). */
  announceMessage(conv, message) {
    const name = this.state.userName(message.userid);
    const text = preview(message);
    if (conv === this.current && document.visibilityState === 'visible') {
      this.announcer.say(t('announce.message', { name, text }));
    } else if (conv.kind === GROUP) {
      const group = this.state.groups.get(conv.dstid)?.name || t('group.fallback_name', { id: conv.dstid });
      this.announcer.say(t('announce.message_group', { name, group, text }));
    } else {
      this.announcer.say(t('announce.message_from', { name, text }));
    }
  }

  // -- start ------------------------------------------------------------------------

  /** This server's edit and recall windows: the message menu offers what it will accept.
   * Until they arrive, or if the request fails, the defaults stand (the server decides). */
  async loadChatConfig() {
    try {
      const config = await get('/chat/config');
      if (Number.isFinite(config.edit_window)) this.state.editWindow = config.edit_window;
      if (Number.isFinite(config.recall_window)) this.state.recallWindow = config.recall_window;
    } catch {
      // An older server without the endpoint, or the network: keep the defaults.
    }
  }

  async boot() {
    setUnauthorizedHandler(() => location.replace('/login'));
    setupLanguageSwitch();
    for (const el of document.querySelectorAll('[data-icon]')) el.append(icon(el.dataset.icon));
    let me;
    const chatConfig = this.loadChatConfig(); // in parallel with /user/me
    try {
      me = await get('/user/me');
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return; // redirected
      this.fatal(error);
      return;
    }
    this.state.me = me;
    this.state.users.set(me.id, me);
    await chatConfig;
    this.sidebar = new Sidebar(this);
    this.profile = new ProfilePanel(this);
    this.members = new MembersDialog(this);
    this.person = new PersonDialog(this);
    this.requests = new RequestsPanel(this);
    this.search = new SearchPanel(this);
    this.view = new ConversationView(this);
    this.notify = new Notifier(this);
    this.invalidate('me');

    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.conn = new ChatConnection(`${scheme}//${location.host}/chat`, `fastim.outbox.${me.id}`);
    this.restoreOutbox();
    this.conn.addEventListener('state', () => {
      // Presence is only known while connected: a peer who went away meanwhile would
      // still show online. Unknown until the next snapshot (cmd 50 with `users`).
      const connected = this.conn.state === 'online';
      if (this.state.connected !== connected) {
        this.state.connected = connected;
        this.invalidate('lists', 'conv');
      }
      this.invalidate('conn');
    });
    this.conn.addEventListener('frame', (e) => this.onFrame(e.detail));
    this.conn.addEventListener('open', () => this.invalidate('conn'));
    this.conn.addEventListener('ack', (e) => this.onAck(e.detail));
    this.conn.addEventListener('rejected', (e) => this.onRejected(e.detail));
    this.conn.addEventListener('unauthorized', () => location.replace('/login'));
    for (const id of ['conn-retry', 'conv-conn-retry']) {
      document.getElementById(id)?.addEventListener('click', () => this.conn.open());
    }
    // The countdown of the offline state.
    setInterval(() => { if (this.conn.state === 'offline') this.invalidate('conn'); }, 1000);
    setInterval(() => this.expireTyping(), 1000);

    try {
      await Promise.all([this.loadFriends(), this.loadGroups(), this.requests.refresh(),
        this.profile.loadBlocked()]);
    } catch (error) {
      // Logged out meanwhile (another tab, Back after logging out): the 401 handler is
      // on its way to the login page; nothing here may throw past it.
      if (error instanceof ApiError && error.status === 401) return;
      this.fatal(error);
      return;
    }
    this.root.removeAttribute('aria-busy');
    this.conn.start();
    window.addEventListener('hashchange', () => this.route());
    document.addEventListener('keydown', (event) => this.onShortcut(event));
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.current) this.view.markVisible();
    });
    // Typed but not sent (offline, or in flight): the outbox keeps it on this device and
    // sends it on the next open, but the person should know before the tab goes.
    window.addEventListener('beforeunload', (event) => {
      if (this.leaving || !this.unsent()) return;
      event.preventDefault();
      event.returnValue = t('outbox.unsent_warning');
    });
    // Back after logging out may show this page from the back-forward cache: ask the
    // server again, which sends a logged-out browser to the login page.
    window.addEventListener('pageshow', (event) => { if (event.persisted) location.reload(); });
    this.route();
    this.notify.start();
    // For the tests and the curious: the live objects.
    window.fastim = this;
  }

  /** The documented shortcuts (docs/client.md, "Keyboard"): Alt+↑/↓ open the previous or
   * next conversation of the list on screen, Alt+M focuses the composer. `code`, not
   * `key`: on a Mac, Option+M types µ. */
  onShortcut(event) {
    if (!event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (event.key === 'ArrowUp' || event.key === 'ArrowDown') {
      event.preventDefault();
      this.sidebar.step(event.key === 'ArrowDown' ? 1 : -1);
    } else if (event.code === 'KeyM') {
      event.preventDefault();
      this.view.focusComposer();
    }
  }

  /** Messages in the outbox (not acked), changes of stored messages not counted. */
  unsent() {
    return this.conn ? this.conn.outbox.items.filter((f) => !CHANGE_CMDS.has(f.cmd)).length : 0;
  }

  fatal(error) {
    this.root.removeAttribute('aria-busy');
    const p = document.createElement('p');
    p.className = 'fatal';
    p.textContent = t('app.fatal', { error: error.message || error });
    document.body.prepend(p);
  }

  /** Messages still in this tab's outbox (typed before a reload, not yet acked). */
  restoreOutbox() {
    for (const frame of this.conn.outbox.items) {
      if (CHANGE_CMDS.has(frame.cmd)) continue; // an edit, recall, reaction: not a bubble
      const conv = this.state.conv(frame.cmd, frame.dstid);
      conv.put({ ...frame, userid: this.state.me.id, localTs: frame.localTs || Date.now() });
    }
  }

  // -- lists ------------------------------------------------------------------------

  async loadFriends() {
    const rows = await this.allPages('/contact/loadfriend');
    if (this.ready) {
      for (const user of rows) if (!this.state.isFriend(user.id)) this.state.presenceUnknown.add(user.id);
    }
    for (const user of rows) {
      // A friend added since the last snapshot: the list's `online` is the best we know
      // until a presence event comes.
      if (typeof user.online === 'boolean' && this.state.presenceUnknown.has(user.id)) {
        this.setOnline(user.id, user.online);
      }
    }
    this.state.friendIds = rows.map((u) => u.id);
    this.notify.takeMutes(SINGLE, rows);
    for (const user of rows) {
      this.state.users.set(user.id, user);
      this.state.conv(SINGLE, user.id);
    }
    this.invalidate('lists', 'conv');
  }

  async loadGroups() {
    const rows = await this.allPages('/contact/loadcommunity');
    const ids = new Set(rows.map((g) => g.id));
    for (const id of [...this.state.groups.keys()]) if (!ids.has(id)) this.forgetGroup(id);
    this.notify.takeMutes(GROUP, rows);
    for (const group of rows) {
      this.state.groups.set(group.id, group);
      this.state.conv(GROUP, group.id);
    }
    this.invalidate('lists', 'conv');
  }

  async allPages(path, values = {}) {
    const rows = [];
    for (let page = 0; ; page++) {
      const data = await get(path, { ...values, pagefrom: page, pagesize: 500 });
      rows.push(...data.rows);
      if (rows.length >= data.total || data.rows.length === 0) return rows;
    }
  }

  /** Reload a list at most once at a time (unknown sender, new friend, reconnect). */
  refresh(what) {
    if (this.refreshing[what]) return this.refreshing[what];
    const load = { friends: () => this.loadFriends(), groups: () => this.loadGroups() }[what];
    this.refreshing[what] = load().catch(() => {}).finally(() => { this.refreshing[what] = null; });
    return this.refreshing[what];
  }

  forgetGroup(id) {
    this.state.groups.delete(id);
    this.state.members.delete(id);
    this.state.convs.delete(convKey(GROUP, id));
    if (this.current && this.current.key === convKey(GROUP, id)) location.hash = '';
  }

  async loadMembers(groupId) {
    const rows = await this.allPages('/contact/loadmembers', { dstid: groupId });
    for (const user of rows) {
      const known = this.state.users.get(user.id);
      this.state.users.set(user.id, { ...known, ...user });
    }
    this.state.members.set(groupId, rows);
    this.invalidate('conv', 'lists'); // names in bubbles and in list previews
    return rows;
  }

  /** Only conversations with a friend or a group the user is in are listed. */
  listed(conv) {
    return conv.kind === GROUP ? this.state.groups.has(conv.dstid) : this.state.isFriend(conv.dstid);
  }

  /** After the first connect: every conversation's newest message and unread counts,
   * in one request (GET /chat/summaries). Messages that cross it on the wire count once,
   * as in `loadUnread`. */
  async loadSummaries() {
    const askedAt = this.state.maxId;
    let data;
    try { data = await get('/chat/summaries'); } catch { return; }
    const me = this.state.me.id;
    for (const row of data.rows) {
      if (row.sender && !this.state.users.has(row.sender.id)) this.state.users.set(row.sender.id, row.sender);
      const conv = this.state.conv(row.cmd, row.dstid);
      const last = row.message ? row.message.id : 0;
      if (row.message) this.ingestPage(conv, [row.message]);
      if (conv === this.current && this.canSeeBottom()) {
        this.markRead(conv, Math.max(last, conv.newestId));
        continue;
      }
      conv.unread = row.unread + conv.countFromOthersAbove(Math.max(last, askedAt), me);
      conv.mentions = row.mentions + conv.countMentionsAbove(Math.max(last, askedAt), me);
    }
    this.invalidate('lists', 'conv');
  }

  /**
   * The server's unread counts. Messages that reach us while the request is on its way
   * must count once: anything newer than both the newest id seen before asking and the
   * newest message the server counted is added on top of the server's count.
   */
  async loadUnread() {
    const askedAt = this.state.maxId;
    let data;
    try { data = await get('/chat/unread'); } catch { return; }
    const rows = new Map(data.rows.map((row) => [convKey(row.cmd, row.dstid), row]));
    const me = this.state.me.id;
    for (const row of data.rows) this.state.conv(row.cmd, row.dstid);
    for (const conv of this.state.convs.values()) {
      const row = rows.get(conv.key);
      if (row) this.state.seen(row.last);
      if (conv === this.current && this.canSeeBottom()) {
        this.markRead(conv, Math.max(row ? row.last : 0, conv.newestId));
        continue;
      }
      const counted = row ? row.unread : 0;
      conv.unread = counted + conv.countFromOthersAbove(Math.max(row ? row.last : 0, askedAt), me);
      conv.mentions = (row ? row.mentions || 0 : 0) + conv.countMentionsAbove(Math.max(row ? row.last : 0, askedAt), me);
    }
    this.invalidate('lists');
  }

  // -- routing ----------------------------------------------------------------------

  route() {
    const match = /^#\/([ug])\/(\d+)$/.exec(location.hash);
    if (!match) {
      const left = this.current;
      this.current = null;
      this.root.dataset.view = 'list';
      const hadFocus = this.view.el.section.contains(document.activeElement) || document.activeElement === document.body;
      this.view.close();
      this.invalidate('lists');
      // Back from a conversation (on a phone its column goes away): focus goes to its
      // entry in the list, not to the top of the page.
      if (left && hadFocus) {
        queueMicrotask(() => queueMicrotask(() => {
          document.querySelector(`a.conv-item[data-key="${left.key}"]`)?.focus({ preventScroll: false });
        }));
      }
      return;
    }
    const kind = match[1] === 'g' ? GROUP : SINGLE;
    const conv = this.state.conv(kind, Number(match[2]));
    if (!this.listed(conv)) {
      // Not (yet) a friend or a group of ours: the lists may just be stale.
      Promise.all([this.refresh('friends'), this.refresh('groups')]).then(() => {
        if (location.hash === `#/${match[1]}/${match[2]}` && this.listed(conv)) this.route();
        else if (location.hash === `#/${match[1]}/${match[2]}`) location.hash = '';
      });
      return;
    }
    this.sidebar.showTab('friends', { focus: false }); // the one list of chats, this one active
    this.open(conv);
  }

  open(conv) {
    this.current = conv;
    this.root.dataset.view = 'chat';
    // Opened with unread messages: a divider above the first, and the view starts there.
    conv.divider = conv.unread > 0 ? { unread: conv.unread, shown: false } : null;
    this.view.open(conv);
    this.invalidate('lists', 'conv');
    if (!conv.loaded) this.loadNewest(conv); // else the view marks read what it shows
    this.loadReads(conv);
    if (conv.kind === GROUP) {
      this.loadMembers(conv.dstid).catch(() => {});
      this.loadGroupChanges(conv);
    }
  }

  /** Who joined and left, placed among the group's messages (GET /contact/groupchanges). */
  async loadGroupChanges(conv) {
    let data;
    try { data = await get('/contact/groupchanges', { dstid: conv.dstid }); } catch { return; }
    conv.setChanges(data.rows);
    this.invalidate('conv');
  }

  async loadNewest(conv) {
    try {
      const data = await get('/chat/history', { cmd: conv.kind, dstid: conv.dstid, pagesize: HISTORY_PAGE });
      this.ingestPage(conv, data.rows);
      conv.loaded = true;
      conv.hasOlder = data.rows.length === HISTORY_PAGE;
    } catch (error) {
      conv.loadError = error.message;
    }
    this.invalidate('conv', 'lists');
    if (conv === this.current) this.view.showStart();
  }

  /** One older page of history, on scrolling up. */
  loadOlder(conv) {
    if (!conv.hasOlder || conv.loadingOlder || !conv.loaded) return conv.loadingOlder;
    const before = conv.oldestId;
    if (!before) { conv.hasOlder = false; return null; }
    conv.loadingOlder = (async () => {
      try {
        const data = await get('/chat/history', { cmd: conv.kind, dstid: conv.dstid, before, pagesize: HISTORY_PAGE });
        this.ingestPage(conv, data.rows);
        conv.hasOlder = data.rows.length === HISTORY_PAGE;
      } catch (error) {
        conv.loadError = error.message;
      } finally {
        conv.loadingOlder = null;
      }
    })();
    this.invalidate('conv');
    return conv.loadingOlder;
  }

  ingestPage(conv, rows) {
    for (const row of rows) {
      this.state.seen(row.id);
      conv.put(row);
    }
  }

  async loadReads(conv) {
    let data;
    try { data = await get('/chat/reads', { cmd: conv.kind, dstid: conv.dstid }); } catch { return; }
    for (const row of data.rows) this.applyReceipt(conv, row.userid, row.upto);
    conv.marksLoaded = true;
    this.invalidate('conv');
  }

  // -- frames from the server ---------------------------------------------------------

  onFrame(frame) {
    switch (frame.cmd) {
      case SINGLE:
      case GROUP:
        if (frame.id) {
          this.onMessage(frame, 'live');
          this.countLive();
        }
        break;
      case 21: this.onSyncResult(frame); break;
      case 60: case 61: case 62: case 63:
        if (frame.change) {
          this.onChange(frame);
          this.countLive();
        }
        break;
      case 31: this.onReceipt(frame); break;
      case 40: this.onTyping(frame); break;
      case 50: this.onPresence(frame); break;
      case 70: this.onContact(frame); break;
      case 71: this.onGroupNotice(frame); break;
      default: break;
    }
    this.invalidate('conn'); // the outbox count may have changed
  }

  onPresence(frame) {
    if (Array.isArray(frame.users)) {
      // The snapshot right after connecting: the connection is registered, so from
      // here on every message reaches us live.
      this.state.online = new Set(frame.users);
      this.state.presenceUnknown.clear();
      this.onReady();
    } else {
      this.setOnline(frame.userid, Boolean(frame.online));
      if (frame.online && !this.state.isFriend(frame.userid)) this.refresh('friends');
    }
    this.invalidate('lists', 'conv');
  }

  /** A friend request came, a friendship began or ended (docs/chat-protocol.md, cmd 70). */
  onContact(frame) {
    if (frame.event === 'request') {
      this.requests.refresh();
    } else if (frame.event === 'friend') {
      this.refresh('friends');
      this.requests.refresh();
    } else if (frame.event === 'unfriend') {
      // Unfriended, or blocked (which looks the same): no presence any more. The chat
      // stays readable; a message sent now comes back refused.
      this.setOnline(frame.userid, false);
      this.refresh('friends');
      this.profile.loadBlocked(); // blocked from another device of mine, maybe
    } else if (frame.event === 'mute') {
      this.notify.onMute(frame);
    }
    this.invalidate('lists', 'conv');
  }

  /** Something happened in a group (docs/chat-protocol.md, cmd 71). */
  onGroupNotice(frame) {
    const me = this.state.me.id;
    if ((frame.event === 'removed' || frame.event === 'left') && frame.userid === me) {
      // Removed (or left on another device): the group goes from the lists at once.
      this.forgetGroup(frame.groupid);
      if (this.members.groupId === frame.groupid) this.members.dialog.close();
    } else if (frame.event === 'joined' && frame.userid === me) {
      this.refresh('groups');
    } else {
      this.members.refreshIf(frame.groupid);
      const conv = this.state.convs.get(convKey(GROUP, frame.groupid));
      if (['joined', 'left', 'removed'].includes(frame.event) && conv) {
        // "Bob joined" in the conversation, and the member count kept current.
        conv.addChange({ userid: frame.userid, event: frame.event, after: conv.newestId, ts: Date.now(), live: true });
        if (conv === this.current) this.view.messagesChanged(true);
      }
      // The member list says who moderates (what the message menu and the @ picker
      // offer): loaded again on a join, leave or role, never dropped while in use (a
      // dropped list left the open conversation's @ picker empty).
      if (frame.event !== 'request'
          && (conv === this.current || this.state.members.has(frame.groupid))) {
        this.loadMembers(frame.groupid).catch(() => this.state.members.delete(frame.groupid));
      }
    }
    this.invalidate('lists', 'conv');
  }

  setOnline(userid, online) {
    this.state.presenceUnknown.delete(userid);
    if (online) this.state.online.add(userid);
    else this.state.online.delete(userid);
  }

  onReady() {
    if (!this.ready) {
      this.ready = true;
      this.loadSummaries();
    }
    if (!this.baselineDone) {
      // Where both cursors start (docs/chat-protocol.md "The sync cursor"): what history
      // shows is each message as it is now, so only what comes after matters. A sync
      // from nothing answers `head` (every message up to it is committed) and the
      // change log's newest id; its one row is ignored. Asked again after a reconnect
      // if the answer never came.
      this.awaitingBaseline = this.conn.sendControl({ cmd: 20, since: 0, limit: 1, changes_since: 0 });
      return;
    }
    // A reconnect: fetch what was sent and changed meanwhile (cmd 20); once that is in,
    // the counts and read marks that moved while we were away. Lists may have changed too.
    this.askSync(false);
    this.refresh('friends');
    this.refresh('groups');
    this.requests.refresh();
  }

  /** Ask for what came after the cursors (cmd 20). The cursors move only with sync
   * pages, never to a live id: across nodes a live id can overtake a lower one still
   * being committed, and a cursor moved past it would skip that one for good if the
   * connection ended before it arrived. So a `checkpoint` asks again, from time to time,
   * for what came live: the server sends only what this connection lacks, and the pages
   * move the cursors. */
  askSync(checkpoint) {
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = null;
    this.liveCount = 0;
    this.syncing = this.syncPage(this.state.syncCursor) ? { checkpoint } : null;
  }

  /** Ask for one sync page from `since`, naming the messages held above it: after a
   * reconnect, what came live on the last connection is not sent again. */
  syncPage(since) {
    const state = this.state;
    return this.conn.sendControl({ cmd: 20, since, limit: 200, changes_since: state.changeCursor, held: state.heldAbove(since) });
  }

  /** A message or change came live: checkpoint after `checkpointEvery` of them, or
   * CHECKPOINT_AFTER_MS after the first, whichever comes first. */
  countLive() {
    if (!this.baselineDone || this.syncing) return;
    this.liveCount += 1;
    if (this.liveCount >= this.checkpointEvery) this.askSync(true);
    else if (!this.checkpointTimer) {
      this.checkpointTimer = setTimeout(() => {
        this.checkpointTimer = null;
        if (!this.syncing && this.conn.state === 'online') this.askSync(true);
      }, CHECKPOINT_AFTER_MS);
    }
  }

  onSyncResult(frame) {
    const state = this.state;
    if (this.awaitingBaseline) {
      this.awaitingBaseline = false;
      this.baselineDone = true;
      state.changeCursor = Math.max(state.changeCursor, frame.changes_next || 0);
      state.syncCursor = Math.max(state.syncCursor, frame.head || 0);
      return;
    }
    for (const row of frame.rows || []) this.onMessage(row, 'sync');
    for (const change of frame.changes || []) this.onChange(change);
    // Everything up to `next` is held now: in these rows, or sent live before them.
    state.syncCursor = Math.max(state.syncCursor, frame.next || 0);
    if (typeof frame.changes_next === 'number') {
      state.changeCursor = Math.max(state.changeCursor, frame.changes_next);
    }
    if (frame.more || frame.changes_more) {
      this.syncPage(frame.next);
      return;
    }
    const checkpoint = this.syncing && this.syncing.checkpoint;
    this.syncing = null;
    if (checkpoint) return; // nothing was missed while connected: counts stand
    this.loadUnread();
    if (this.current) this.loadReads(this.current);
  }

  onMessage(message, source) {
    const state = this.state;
    state.seen(message.id);
    const conv = state.convOf(message);
    const { added } = conv.put(message);
    const fromOther = message.userid !== state.me.id;
    if (fromOther) conv.typing.delete(message.userid);
    if (added && fromOther && source === 'live' && this.listed(conv)) this.announceMessage(conv, message);
    if (added && fromOther) {
      if (conv === this.current && this.canSeeBottom()) this.markRead(conv);
      else {
        conv.unread += 1;
        if (message.mentioned) conv.mentions += 1;
        if (source === 'live') this.notify.alert(conv, message);
      }
    }
    if (!this.listed(conv)) this.refresh(conv.kind === GROUP ? 'groups' : 'friends');
    if (conv.kind === GROUP && fromOther && !state.users.has(message.userid)) {
      this.loadMembers(conv.dstid).catch(() => {});
    }
    if (conv === this.current) this.view.messagesChanged(source === 'live' && added);
    this.invalidate('lists', 'conv');
  }

  /** An edit, recall, reaction or delete-for-me (docs/chat-protocol.md, cmd 60-63),
   * live or from a sync: each carries the message's state now, and a change older
   * than one already applied to that message changes nothing. */
  onChange(frame) {
    const state = this.state;
    const found = state.findMessage(frame.id);
    if (!found) return; // not loaded here: history will show it as it is
    const { conv, message } = found;
    if ((message.change || 0) >= frame.change) return;
    if (frame.cmd === DELETE) {
      conv.remove(message);
    } else {
      message.change = frame.change;
      message.content = frame.content;
      message.reactions = frame.reactions || {};
      if (frame.edited) message.edited = frame.edited;
      if (frame.recalled) {
        Object.assign(message, { recalled: true, content: '', url: '', pic: '', memo: '', reactions: {} });
      }
      // Quotes of it in replies follow.
      for (const m of conv.messages) {
        if (m.reply && m.reply.id === message.id) {
          m.reply = frame.recalled ? { ...m.reply, content: '', recalled: true }
            : { ...m.reply, content: (frame.content || '').slice(0, 100) };
        }
      }
    }
    if (conv === this.current) this.view.messagesChanged(false);
    this.invalidate('conv', 'lists');
  }

  /** Send a change of a stored message: kept in the outbox (same cid on a resend) until
   * its ack; the change shows when the server sends it back. */
  sendChange(fields) {
    const cid = newCid();
    this.changeCids.add(cid);
    this.conn.sendMessage({ ...fields, cid });
    this.invalidate('conn');
  }

  onAck(frame) {
    if (this.changeCids.delete(frame.cid) || frame.change !== undefined) return; // the change itself follows
    this.state.seen(frame.id);
    const key = `${this.state.me.id}:${frame.cid}`;
    for (const conv of this.state.convs.values()) {
      const message = conv.byKey.get(key);
      if (!message) continue;
      conv.put({ ...message, id: frame.id, ts: frame.ts });
      this.invalidate('conv', 'lists');
      return;
    }
  }

  onRejected(frame) {
    if (this.changeCids.delete(frame.cid)) {
      this.view.notice(t('message.change_refused', { reason: errorText(frame.msg, frame.error) }));
      return;
    }
    const key = `${this.state.me.id}:${frame.cid}`;
    for (const conv of this.state.convs.values()) {
      const message = conv.byKey.get(key);
      if (!message) continue;
      message.status = 'failed';
      message.error = errorText(frame.msg, frame.error);
      this.invalidate('conv');
      return;
    }
  }

  onReceipt(frame) {
    const conv = frame.kind === GROUP
      ? this.state.conv(GROUP, frame.dstid)
      : this.state.conv(SINGLE, frame.userid === this.state.me.id ? frame.dstid : frame.userid);
    this.applyReceipt(conv, frame.userid, frame.upto);
    this.invalidate('conv', 'lists');
  }

  applyReceipt(conv, userid, upto) {
    const me = this.state.me.id;
    if (userid === me) {
      // Read here or on another device: what is left unread is above the mark.
      conv.readSent = Math.max(conv.readSent, upto);
      conv.unread = upto >= conv.newestId ? 0 : Math.min(conv.unread, conv.countFromOthersAbove(upto, me));
      return;
    }
    if (conv.kind === GROUP) conv.marks.set(userid, Math.max(conv.marks.get(userid) || 0, upto));
    else conv.peerRead = Math.max(conv.peerRead, upto);
  }

  onTyping(frame) {
    if (frame.userid === this.state.me.id) return;
    const conv = frame.kind === GROUP ? this.state.conv(GROUP, frame.dstid) : this.state.conv(SINGLE, frame.userid);
    conv.typing.set(frame.userid, Date.now() + TYPING_SHOWN_FOR);
    this.invalidate('conv', 'lists');
  }

  expireTyping() {
    let changed = false;
    const now = Date.now();
    for (const conv of this.state.convs.values()) {
      for (const [user, until] of conv.typing) {
        if (until <= now) { conv.typing.delete(user); changed = true; }
      }
    }
    if (changed) this.invalidate('conv', 'lists');
  }

  // -- actions ------------------------------------------------------------------------

  canSeeBottom() {
    return document.visibilityState === 'visible' && this.view.atBottom() && !this.view.findingStart();
  }

  /** Tell the server (and so the other side's ticks) how far this conversation is read. */
  markRead(conv, upto = conv.newestId) {
    if (document.visibilityState !== 'visible') return;
    const me = this.state.me.id;
    // Read as far as the person has scrolled, not the whole conversation at once.
    conv.unread = upto >= conv.newestId ? 0 : Math.min(conv.unread, conv.countFromOthersAbove(upto, me));
    conv.mentions = conv.unread ? Math.min(conv.mentions, conv.countMentionsAbove(upto, me)) : 0;
    this.invalidate('lists');
    if (!upto || upto <= conv.readSent) return;
    if (this.conn.sendControl({ cmd: 30, kind: conv.kind, dstid: conv.dstid, upto })) conv.readSent = upto;
  }

  sendTyping(conv) {
    const now = Date.now();
    if (now - (conv.typingSentAt || 0) < 3000) return;
    if (this.conn.sendControl({ cmd: 40, kind: conv.kind, dstid: conv.dstid })) conv.typingSentAt = now;
  }

  /** Put a message on screen at once and into the outbox (sent now, or once back). */
  send(conv, fields, reply = null) {
    const frame = { cmd: conv.kind, dstid: conv.dstid, cid: newCid(), ...fields, localTs: Date.now() };
    conv.put({ ...frame, userid: this.state.me.id, ...(reply ? { reply } : {}) });
    this.conn.sendMessage(frame);
    conv.typingSentAt = 0;
    this.view.messagesChanged(true, true);
    this.invalidate('conv', 'lists', 'conn');
  }

  /** `extra`: `reply_to` (and the quote to show meanwhile), `mentions`. */
  sendText(conv, text, extra = {}) {
    if (!text.trim()) return;
    const { reply, ...wire } = extra;
    const frame = { media: TEXT, content: text, ...wire };
    this.send(conv, frame, reply);
  }

  sendSticker(conv, url) {
    this.send(conv, { media: IMAGE, url, pic: url, content: '' });
  }

  /** A photo: shown at once with a progress bar, sent as a message once uploaded. */
  sendPhoto(conv, file, message = null) {
    this.sendUpload(conv, file, 'image', message);
  }

  /** A voice recording of about `seconds` (the server's own figure replaces it). */
  sendVoice(conv, file, seconds, message = null) {
    this.sendUpload(conv, file, 'voice', message, { amount: Math.max(1, Math.round(seconds)) });
  }

  /** Any file: a card with its name and size, a download link once sent. */
  sendFile(conv, file, message = null) {
    this.sendUpload(conv, file, 'file', message, { memo: file.name, amount: file.size });
  }

  /** Shown at once with a progress bar (and a cancel), sent as a message once uploaded. */
  sendUpload(conv, file, kind, message = null, fields = {}) {
    const me = this.state.me.id;
    const media = { image: IMAGE, voice: VOICE, file: FILE }[kind];
    let draft = message;
    if (!draft) {
      const cid = newCid();
      draft = conv.put({
        cmd: conv.kind, dstid: conv.dstid, cid, userid: me, media, content: '',
        url: '', pic: '', memo: '', amount: 0, ...fields, localTs: Date.now(),
        localUrl: kind === 'file' ? '' : URL.createObjectURL(file),
      }).message;
    }
    draft.status = 'uploading';
    draft.progress = 0;
    draft.error = '';
    draft.file = file;
    draft.kind = kind;
    this.view.messagesChanged(true, true);
    this.invalidate('conv', 'lists');
    const { promise, abort } = upload(file, (fraction) => {
      draft.progress = fraction;
      this.invalidate('conv');
    }, kind);
    draft.abort = abort;
    promise.then((result) => {
      draft.abort = null;
      draft.file = null;
      const frame = { cmd: conv.kind, dstid: conv.dstid, cid: draft.cid, media, content: '',
        url: result.url, pic: '', localTs: draft.localTs };
      if (kind === 'image') frame.pic = result.thumb || result.url;
      if (kind === 'voice') frame.amount = result.amount;
      if (kind === 'file') { frame.memo = result.name; frame.amount = result.size; }
      Object.assign(draft, { url: frame.url, pic: frame.pic, memo: frame.memo ?? draft.memo,
        amount: frame.amount ?? draft.amount, status: 'pending' });
      this.conn.sendMessage(frame);
      this.invalidate('conv', 'lists', 'conn');
    }, (error) => {
      draft.abort = null;
      draft.status = 'failed';
      draft.error = error.message;
      this.invalidate('conv');
    });
  }

  /** Remove a message that never reached the server (failed or cancelled upload). */
  discard(conv, message) {
    if (message.abort) message.abort();
    if (message.localUrl) URL.revokeObjectURL(message.localUrl);
    this.conn.forget(message.cid);
    conv.remove(message);
    this.invalidate('conv', 'lists', 'conn');
  }

  /** Log out (after the profile's confirmation). The outbox stays on this device, keyed
   * to this user, and is sent when they log in here again. */
  async logout() {
    try { await api('/user/logout'); } catch { /* the cookie may already be gone */ }
    this.conn.stop();
    this.leaving = true;
    location.replace('/login');
  }
}

const app = new App();
app.boot();
