// What the client knows: who the user is, friends, groups, presence, and each
// conversation's messages. Messages are keyed so that one message seen several ways
// (history, live, sync, the ack of our own send) is one entry.
import { t } from './i18n.js';

export const SINGLE = 10;
export const GROUP = 11;
export const TEXT = 1;
export const VOICE = 3;
export const IMAGE = 4;
export const FILE = 5; // fastim's own: `memo` is the file's name, `amount` its size
export const EDIT = 60;
export const RECALL = 61;
export const REACT = 62;
export const DELETE = 63;
/** At most this many ids in a sync's `held` (the server's limit, ChatLimits.max_held). */
const HELD_MOST = 1000;
export const CHANGE_CMDS = new Set([EDIT, RECALL, REACT, DELETE]);
/** Seconds the server allows for an edit and a recall by default (--edit-window,
 * --recall-window): used until GET /chat/config tells this server's own. The menu offers
 * them within the windows; the server decides. */
export const EDIT_WINDOW = 24 * 3600;
export const RECALL_WINDOW = 120;

export function convKey(kind, dstid) {
  return `${kind === GROUP ? 'g' : 'u'}${dstid}`;
}

/** A message's identity: its sender's cid when it has one (so our unacked copy and the
 * server's copy meet), else its server id. */
export function messageKey(message) {
  if (message.cid !== null && message.cid !== undefined && message.cid !== '') {
    return `${message.userid}:${message.cid}`;
  }
  return `#${message.id}`;
}

let localSeq = 0;

export class Conversation {
  constructor(kind, dstid) {
    this.kind = kind;
    this.dstid = dstid;
    this.key = convKey(kind, dstid);
    /** Stored messages by id, then ours still waiting for an ack, in the order typed. */
    this.messages = [];
    this.byKey = new Map();
    this.unread = 0;
    this.mentions = 0; // unread messages that mention me
    this.loaded = false; // the newest page of history has been fetched
    this.hasOlder = true; // history may hold older messages than the oldest here
    this.loadingOlder = null; // the pending request, if any
    this.peerRead = 0; // 1:1: how far the other side has read
    this.marks = new Map(); // groups: userid -> read up to
    this.marksLoaded = false;
    this.typing = new Map(); // userid -> when their "typing…" expires (ms)
    this.readSent = 0; // the highest read mark this tab has sent
    /** Groups: who joined and left, each placed `after` a message id (GET
     * /contact/groupchanges, then live from cmd 71). */
    this.changes = [];
    /** Opened with unread messages: {unread} for the divider above the first of them. */
    this.divider = null;
  }

  /** The server's list of joins and leaves replaces what was known; a live one it does
   * not have yet (it crossed the request) stays. */
  setChanges(rows) {
    const same = (a, b) => a === b || (a === 'left' && b === 'removed'); // kept as a leave
    const known = (c) => rows.some((row) => row.userid === c.userid && same(row.event, c.event)
      && row.after >= c.after);
    this.changes = [...rows.map((row) => ({ ...row })), ...this.changes.filter((c) => c.live && !known(c))];
  }

  /** One join or leave seen live (cmd 71). */
  addChange(change) {
    const same = (c) => c.userid === change.userid && c.event === change.event && c.after === change.after;
    if (!this.changes.some(same)) this.changes.push(change);
  }

  get last() { return this.messages[this.messages.length - 1] || null; }

  get lastTs() { return this.last ? this.last.ts || this.last.localTs || 0 : 0; }

  get oldestId() {
    for (const m of this.messages) if (m.id) return m.id;
    return null;
  }

  get newestId() {
    for (let i = this.messages.length - 1; i >= 0; i--) if (this.messages[i].id) return this.messages[i].id;
    return 0;
  }

  /** Add or update a message; returns {message, added}. */
  put(incoming) {
    const key = messageKey(incoming);
    const known = this.byKey.get(key);
    if (known) {
      const hadId = known.id;
      Object.assign(known, incoming, { key });
      if (known.id && (known.status === 'pending' || known.status === 'failed')) {
        known.status = 'sent';
        known.error = '';
      }
      if (!hadId && known.id) this.sort();
      return { message: known, added: false };
    }
    const message = { status: incoming.id ? 'sent' : 'pending', ...incoming, key, seq: ++localSeq };
    this.byKey.set(key, message);
    const last = this.messages[this.messages.length - 1];
    this.messages.push(message);
    // Appending keeps the order unless a stored message lands before a newer one or
    // before our pending ones.
    if (message.id && last && !(last.id && last.id < message.id)) this.sort();
    return { message, added: true };
  }

  sort() {
    this.messages.sort((a, b) => (a.id || Infinity) - (b.id || Infinity) || a.seq - b.seq);
  }

  remove(message) {
    this.byKey.delete(message.key);
    const at = this.messages.indexOf(message);
    if (at >= 0) this.messages.splice(at, 1);
  }

  /** Messages from others above `upto` (what a badge counts). */
  countFromOthersAbove(upto, me) {
    let n = 0;
    for (const m of this.messages) if (m.id > upto && m.userid !== me) n++;
    return n;
  }

  countMentionsAbove(upto, me) {
    let n = 0;
    for (const m of this.messages) if (m.id > upto && m.userid !== me && m.mentioned) n++;
    return n;
  }

  /** Members of a group (other than `me`) whose read mark has reached `id`. */
  readCount(id, me) {
    let n = 0;
    for (const [user, upto] of this.marks) if (user !== me && upto >= id) n++;
    return n;
  }

  typingUsers(now = Date.now()) {
    const out = [];
    for (const [user, until] of this.typing) {
      if (until > now) out.push(user);
      else this.typing.delete(user);
    }
    return out;
  }
}

export class ChatState {
  constructor() {
    this.me = null;
    this.users = new Map(); // id -> public profile
    this.friendIds = [];
    this.groups = new Map(); // id -> community
    this.members = new Map(); // group id -> [{id, role, ...}]
    this.blocked = new Map(); // id -> public profile of a user I block
    this.online = new Set();
    /** Friends added after the last presence snapshot: the server tells presence only
     * when someone connects or disconnects, so theirs is unknown until then. */
    this.presenceUnknown = new Set();
    this.convs = new Map();
    /** The highest server id seen (what the unread counts were asked at). */
    this.maxId = 0;
    /** Where the next sync starts (cmd 20): moved only by sync pages, never by a live
     * id (docs/chat-protocol.md "The sync cursor"). */
    this.syncCursor = 0;
    /** The change log's cursor (cmd 60-63), moved the same way. */
    this.changeCursor = 0;
    /** Whether the WebSocket is up: presence is unknown while it is not. */
    this.connected = false;
    /** This server's edit and recall windows in seconds (GET /chat/config). */
    this.editWindow = EDIT_WINDOW;
    this.recallWindow = RECALL_WINDOW;
  }

  /** The loaded message with server id `id`, and its conversation. */
  findMessage(id) {
    for (const conv of this.convs.values()) {
      for (const message of conv.messages) if (message.id === id) return { conv, message };
    }
    return null;
  }

  conv(kind, dstid) {
    const key = convKey(kind, dstid);
    let conv = this.convs.get(key);
    if (!conv) {
      conv = new Conversation(kind, dstid);
      this.convs.set(key, conv);
    }
    return conv;
  }

  /** The conversation a message belongs to, from this user's side. */
  convOf(message) {
    if (message.cmd === GROUP) return this.conv(GROUP, message.dstid);
    const other = message.userid === this.me.id ? message.dstid : message.userid;
    return this.conv(SINGLE, other);
  }

  /** The ids of the messages held here above `since`, newest first, at most `most`: a
   * sync names them (`held`) and the server does not send them again. */
  heldAbove(since, most = HELD_MOST) {
    const ids = [];
    for (const conv of this.convs.values()) {
      for (const message of conv.messages) if (message.id > since) ids.push(message.id);
    }
    return ids.sort((a, b) => b - a).slice(0, most);
  }

  seen(id) {
    if (id > this.maxId) this.maxId = id;
  }

  isFriend(id) { return this.friendIds.includes(id); }

  /** true, false, or undefined when unknown. */
  isOnline(id) {
    if (!this.connected || this.presenceUnknown.has(id)) return undefined;
    return this.online.has(id);
  }

  userName(id) {
    if (this.me && id === this.me.id) return this.me.nickname;
    const user = this.users.get(id);
    return user ? user.nickname : t('user.fallback_name', { id });
  }
}
