// The right column: one conversation. Header (who, online or typing…), the messages
// (bubbles with avatar, name in groups, time, ticks or read counts), older history on
// scrolling up, and the composer with emoji, stickers and photos.
import { appendChildren, byId, fileUrl, h, localUrl, syncChildren } from '../dom.js';
import { EMOJI } from '../emoji.js';
import { avatar, clockTime, dayKey, dayLabel, duration, fileSize } from '../format.js';
import { formatDateTime, t, tn } from '../i18n.js';
import { icon } from '../icons.js';
import { DELETE, EDIT, FILE, GROUP, IMAGE, REACT, RECALL, SINGLE, TEXT, VOICE } from '../state.js';
import { isSticker, loadStickerPacks } from '../stickers.js';

const NEAR_BOTTOM = 80; // px: closer than this to the bottom counts as "at the bottom"
const NEAR_TOP = 240; // px: closer than this to the top loads older history
const GROUPED_WITHIN = 5 * 60 * 1000; // consecutive messages of one sender share a header
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉'];
const LONG_PRESS = 500; // ms a touch must rest on a message to open its menu
const MAX_FILE_BYTES = 25 * 1024 * 1024; // the server's --file-max-bytes default
const MAX_VOICE_SECONDS = 60; // the server's --voice-max-seconds default
// What MediaRecorder may record, best first: Opus in WebM (Chrome, Edge, Firefox) or Ogg
// (Firefox), AAC in MP4 (Safari). The server judges the bytes, not this label.
const RECORDING_TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];
const EXTENSIONS = { 'audio/webm': 'webm', 'audio/ogg': 'ogg', 'audio/mp4': 'm4a' };
/** The one voice message playing: starting another pauses it. */
let playing = null;

const segmenter = typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Component}|\u200d|\ufe0f|\s)+$/u;

/** How a text of emoji alone is shown, as messengers do: 'jumbo' (up to three: large,
 * without a bubble), 'emoji' (more: larger, in the bubble) or '' (any other text). */
function emojiSize(text) {
  if (!text || text.length > 400 || !EMOJI_ONLY.test(text) || /^[\d\s#*]+$/.test(text)) return '';
  const count = segmenter ? [...segmenter.segment(text.replace(/\s+/g, ''))].length : Array.from(text.trim()).length;
  return count <= 3 ? 'jumbo' : 'emoji';
}

// A URL in a message's text: http or https only, up to the next blank; punctuation that
// usually ends a sentence is not part of it (RFC 3986 allows it, people do not mean it).
const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"]+/giu;
const TRAILING = /[.,;:!?'")\]}>，。；：！？、）」』]+$/u;

/** Text with its URLs as links: text nodes and <a> elements, never HTML. */
export function linkify(text) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(URL_IN_TEXT)) {
    let raw = match[0];
    const trail = TRAILING.exec(raw);
    // A closing bracket that closes one opened inside the URL stays (Wikipedia's "(x)").
    if (trail) raw = raw.slice(0, raw.length - trail[0].length);
    while (raw.endsWith(')') && (raw.match(/\)/g) || []).length > (raw.match(/\(/g) || []).length) raw = raw.slice(0, -1);
    let url;
    try { url = new URL(raw); } catch { continue; }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    if (match.index > at) parts.push(text.slice(at, match.index));
    parts.push(h('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer', class: 'text-link', text: raw }));
    at = match.index + raw.length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

/** A touch screen without a fine pointer: Enter makes a new line there, the button sends. */
function touchKeyboard() {
  return matchMedia('(pointer: coarse)').matches && !matchMedia('(any-pointer: fine)').matches;
}

export class ConversationView {
  constructor(app) {
    this.app = app;
    this.conv = null;
    this.nodes = new Map(); // message key -> {node, signature}
    this.days = new Map(); // day key -> separator node
    this.changeNodes = new Map(); // "userid:event:after" -> the line saying it
    this.dividerNode = null;
    this.newBelow = 0; // messages that came while scrolled up: the jump button's count
    this.drafts = new Map();
    this.stick = true; // keep the newest message in view
    this.firstKey = null;
    this.el = {
      section: byId('conversation'), empty: byId('conv-empty'), head: byId('conv-head'),
      back: byId('conv-back'), who: byId('conv-who'), avatar: byId('conv-avatar'),
      title: byId('conv-title'), sub: byId('conv-sub'), membersButton: byId('conv-members'),
      scroller: byId('scroller'), list: byId('messages'), historyState: byId('history-state'),
      composer: byId('composer'), input: byId('message'), attach: byId('attach'),
      file: byId('attach-file'), emojiButton: byId('emoji-button'), stickerButton: byId('sticker-button'),
      send: byId('send'), emojiPicker: byId('emoji-picker'), stickerPicker: byId('sticker-picker'),
      lightbox: byId('lightbox'), lightboxImg: byId('lightbox-img'),
      menu: byId('msg-menu'), mentionPicker: byId('mention-picker'), bar: byId('compose-bar'),
      barText: byId('compose-bar-text'), barCancel: byId('compose-bar-cancel'),
      attachDoc: byId('attach-doc'), docFile: byId('attach-doc-file'), record: byId('record'),
      recorder: byId('recorder'), recTime: byId('rec-time'), recCancel: byId('rec-cancel'),
    };
    this.replyTo = null; // the message the composer answers
    this.editing = null; // the message the composer edits
    this.mentioned = new Map(); // '@nickname' typed from the picker -> user id ('all' too)
    this.players = new Map(); // message key -> its voice player (kept across re-renders)
    this.recording = null;
    const e = this.el;
    e.back.append(icon('back'));
    e.membersButton.append(icon('users'));
    e.attach.append(icon('image'));
    e.emojiButton.append(icon('smile'));
    e.stickerButton.append(icon('sticker'));
    e.attachDoc.append(icon('clip'));
    e.record.append(icon('mic'));
    e.send.append(icon('send'));
    byId('lightbox-close').append(icon('close'));
    // Not a live region: #announcer says a change once, not each second of the countdown.
    this.connBanner = h('p', { class: 'conv-conn', id: 'conv-conn' },
      h('span', { class: 'conn-dot' }), h('span', { class: 'conn-text' }),
      h('button', { type: 'button', class: 'link conn-retry', id: 'conv-conn-retry', hidden: true, text: t('conn.retry_now') }));
    e.head.after(this.connBanner);
    this.setupComposer();
    this.setupRecorder();
    this.setupPickers();
    this.setupScroller();
    this.setupActionKeys();
    this.setupLightbox();
    this.setupLifecycle();
    e.back.addEventListener('click', () => { location.hash = ''; });
    const showMembers = () => { if (this.conv && this.conv.kind === GROUP) this.app.members.show(this.conv.dstid); };
    e.membersButton.addEventListener('click', showMembers);
    // The header: a group's members, or a person's sheet (unfriend, block).
    e.who.addEventListener('click', () => {
      if (!this.conv) return;
      if (this.conv.kind === GROUP) showMembers();
      else this.app.person.show(this.conv.dstid);
    });
  }

  // -- opening and closing -----------------------------------------------------------

  open(conv) {
    if (this.conv && this.conv !== conv) this.drafts.set(this.conv.key, this.el.input.value);
    const switching = this.conv !== conv;
    this.conv = conv;
    const e = this.el;
    e.empty.hidden = true;
    e.head.hidden = false;
    e.scroller.hidden = false;
    e.composer.hidden = false;
    e.membersButton.hidden = conv.kind !== GROUP;
    if (switching) {
      this.cancelRecording();
      this.players.clear();
      this.nodes.clear();
      this.days.clear();
      this.changeNodes.clear();
      this.dividerNode = null;
      this.newBelow = 0;
      this.firstKey = null;
      this.actionsStop = null;
      e.list.replaceChildren();
      e.input.value = this.drafts.get(conv.key) || '';
      this.cancelCompose();
      this.resizeInput();
      this.closePickers();
      this.stick = true;
    }
    this.render();
    this.showStart();
    // On a phone the keyboard would cover the messages; there, focus goes to the
    // conversation's name (what a screen reader then reads) and the composer waits for a tap.
    if (!matchMedia('(max-width: 720px)').matches) e.input.focus({ preventScroll: true });
    else e.who.focus({ preventScroll: true });
  }

  /** Alt+M: to the composer of the open conversation. */
  focusComposer() {
    if (!this.conv) return;
    this.closePickers();
    this.closeMenu();
    this.el.input.focus();
  }

  close() {
    this.cancelRecording();
    if (this.conv) this.drafts.set(this.conv.key, this.el.input.value);
    this.conv = null;
    const e = this.el;
    e.empty.hidden = false;
    e.head.hidden = true;
    e.scroller.hidden = true;
    e.composer.hidden = true;
    this.closePickers();
  }

  // -- rendering ----------------------------------------------------------------------

  render() {
    if (!this.conv) return;
    this.renderHeader();
    this.renderMessages();
    // An open @ picker follows the member list (a member made admin may now call @all,
    // a member who left is no longer offered), unless the keyboard is in it.
    const picker = this.el.mentionPicker;
    if (!picker.hidden && !picker.contains(document.activeElement)) this.updateMentions();
  }

  renderHeader() {
    const { state } = this.app;
    const conv = this.conv;
    const e = this.el;
    const typers = conv.typingUsers();
    let title;
    let sub;
    let entity;
    let online;
    if (conv.kind === GROUP) {
      entity = state.groups.get(conv.dstid) || { id: conv.dstid, name: t('group.fallback_name', { id: conv.dstid }) };
      title = entity.name;
      const members = state.members.get(conv.dstid);
      if (typers.length === 1) sub = t('typing.one', { name: state.userName(typers[0]) });
      else if (typers.length > 1) sub = t('typing.two', { name: state.userName(typers[0]), other: state.userName(typers[1]) });
      else sub = members ? tn('group.member_count', members.length) : '';
    } else {
      entity = state.users.get(conv.dstid) || { id: conv.dstid, nickname: state.userName(conv.dstid) };
      title = entity.nickname;
      online = state.isOnline(conv.dstid);
      sub = typers.length ? t('typing.self') : online !== undefined ? (online ? t('presence.online') : t('presence.offline'))
        : state.connected ? '' : t('chat.presence_unknown');
    }
    const signature = JSON.stringify([conv.key, title, sub, online, entity.avatar, entity.icon, state.connected]);
    if (signature === this.headerSignature) return;
    this.headerSignature = signature;
    e.avatar.replaceChildren(avatar(entity, { group: conv.kind === GROUP, online }));
    e.title.textContent = title;
    e.sub.textContent = sub;
    e.sub.classList.toggle('typing', typers.length > 0);
    e.sub.classList.toggle('online', !typers.length && online === true);
    // Said after the visible name, not instead of it (WCAG 2.5.3, label in name).
    byId('conv-who-hint').textContent = conv.kind === GROUP ? t('chat.who_hint_members') : t('chat.who_hint_profile');
  }

  renderMessages() {
    const conv = this.conv;
    const e = this.el;
    const scroller = e.scroller;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const nodes = [];
    let previous = null;
    let previousDay = null;
    const firstUnread = this.firstUnread();
    // Joins and leaves of the loaded stretch of history, in order (older ones show when
    // their page is loaded).
    const oldest = conv.oldestId;
    const changes = conv.changes
      .filter((c) => !conv.hasOlder || !oldest || c.after >= oldest || (!c.after && c.ts))
      .sort((a, b) => (a.after - b.after) || ((a.ts || 0) - (b.ts || 0)));
    let nextChange = 0;
    let lastTs = 0;
    const changesBefore = (message) => {
      while (nextChange < changes.length) {
        const c = changes[nextChange];
        const before = message === null ? true
          : c.after ? c.after < (message.id || Infinity)
            : (c.ts || 0) < (message.ts || message.localTs || Infinity);
        if (!before) return;
        // Under the separator of its day (a join's own time, else the message before).
        const ts = c.ts || lastTs;
        if (ts && dayKey(ts) !== previousDay) {
          previousDay = dayKey(ts);
          nodes.push(this.daySeparator(previousDay, ts));
        }
        nodes.push(this.changeNode(c));
        nextChange += 1;
        previous = null;
      }
    };
    for (const message of conv.messages) {
      const ts = message.ts || message.localTs || Date.now();
      changesBefore(message);
      const day = dayKey(ts);
      if (day !== previousDay) {
        nodes.push(this.daySeparator(day, ts));
        previousDay = day;
        previous = null;
      }
      if (message === firstUnread) {
        nodes.push(this.unreadDivider(conv.divider.unread));
        previous = null;
      }
      const continued = Boolean(previous && previous.userid === message.userid
        && ts - (previous.ts || previous.localTs || 0) < GROUPED_WITHIN);
      nodes.push(this.messageNode(message, continued));
      previous = message;
      lastTs = ts;
    }
    changesBefore(null);
    syncChildren(e.list, nodes);
    this.rovingActions();

    if (!conv.loaded) e.historyState.textContent = conv.loadError ? t('history.load_error', { error: conv.loadError }) : t('history.loading');
    else if (conv.loadingOlder) e.historyState.textContent = t('history.loading_older');
    else if (!conv.hasOlder) e.historyState.textContent = conv.messages.length ? t('history.start') : t('history.empty');
    else e.historyState.textContent = '';
    e.historyState.dataset.state = !conv.loaded ? 'loading' : conv.loadingOlder ? 'loading-older' : conv.hasOlder ? 'more' : 'start';

    const firstKey = conv.messages.length ? conv.messages[0].key : null;
    const prepended = this.firstKey !== null && firstKey !== this.firstKey;
    this.firstKey = firstKey;
    if (this.stick) this.scrollToBottom();
    else if (prepended) scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the view still
    this.maybeLoadOlder();
  }

  /**
   * The messages' ⋯ buttons are one tab stop, not one each (40 a page): the last one, or
   * the one last focused; ↑/↓ move between them, Home/End to the first and last, Enter
   * opens the menu. Keyboard users reach the composer, the history and the header
   * without walking every message.
   */
  rovingActions() {
    const buttons = [...this.el.list.querySelectorAll('.msg-more')];
    if (!buttons.length) return;
    const keyOf = (b) => b.closest('.msg')?.dataset.key;
    const stop = buttons.find((b) => keyOf(b) === this.actionsStop) || buttons[buttons.length - 1];
    for (const b of buttons) b.tabIndex = b === stop ? 0 : -1;
  }

  setupActionKeys() {
    const list = this.el.list;
    list.addEventListener('focusin', (event) => {
      if (!event.target.matches?.('.msg-more')) return;
      this.actionsStop = event.target.closest('.msg')?.dataset.key;
      this.rovingActions();
    });
    list.addEventListener('keydown', (event) => {
      if (!event.target.matches?.('.msg-more') || event.altKey || event.ctrlKey || event.metaKey) return;
      const buttons = [...list.querySelectorAll('.msg-more')];
      const at = buttons.indexOf(event.target);
      const next = { ArrowUp: buttons[at - 1], ArrowDown: buttons[at + 1], Home: buttons[0],
        End: buttons[buttons.length - 1] }[event.key];
      if (!next && !['ArrowUp', 'ArrowDown', 'Home', 'End'].includes(event.key)) return;
      event.preventDefault(); // not the scroller's own scrolling: the focus moves, and it with it
      if (!next) return;
      next.focus({ preventScroll: true });
      next.closest('.msg').scrollIntoView({ block: 'nearest' });
    });
  }

  /** The first of the unread messages the conversation was opened with: the one that
   * many messages from others before the end. Null when they are not all loaded yet. */
  firstUnread() {
    const conv = this.conv;
    if (!conv.divider) return null;
    // Once placed, the divider stays above the message it was placed above.
    if (conv.divider.key) return conv.byKey.get(conv.divider.key) || null;
    const me = this.app.state.me.id;
    let left = conv.divider.unread;
    for (let i = conv.messages.length - 1; i >= 0; i--) {
      const m = conv.messages[i];
      if (!m.id || m.userid === me) continue;
      left -= 1;
      if (left === 0) return m;
    }
    return !conv.hasOlder ? conv.messages.find((m) => m.id && m.userid !== me) || null : null;
  }

  unreadDivider(count) {
    const text = count === 1 ? t('chat.unread_divider_one') : t('chat.unread_divider', { count });
    if (this.dividerNode && this.dividerNode.textContent === text) return this.dividerNode;
    this.dividerNode = h('li', { class: 'unread-divider', id: 'unread-divider' }, h('span', { text }));
    return this.dividerNode;
  }

  /** "Bob joined the group", "Bob left the group". */
  changeNode(change) {
    const name = change.nickname && !this.app.state.users.has(change.userid)
      ? change.nickname : this.app.state.userName(change.userid);
    const say = { left: () => t('group.member_left', { name }), removed: () => t('group.member_removed', { name }) }[change.event]
      || (() => t('group.member_joined', { name }));
    const text = say();
    const id = `${change.userid}:${change.event}:${change.after}`;
    const cached = this.changeNodes.get(id);
    if (cached && cached.textContent === text) return cached;
    const node = h('li', { class: 'notice', dataset: { event: change.event, userid: String(change.userid) } },
      h('span', { text }));
    this.changeNodes.set(id, node);
    return node;
  }

  daySeparator(day, ts) {
    const label = dayLabel(ts);
    const cached = this.days.get(day);
    if (cached && cached.textContent === label) return cached;
    const node = h('li', { class: 'day' }, h('span', { text: label }));
    if (cached && cached.isConnected) cached.replaceWith(node);
    this.days.set(day, node);
    return node;
  }

  /** How far a message of mine has been read: [status, label]. */
  readState(message) {
    const conv = this.conv;
    if (message.status !== 'sent') return [message.status, ''];
    if (conv.kind === SINGLE) return conv.peerRead >= message.id ? ['read', t('status.read')] : ['sent', t('status.sent')];
    const count = conv.readCount(message.id, this.app.state.me.id);
    return count ? ['read', t('status.read_by', { count })] : ['sent', t('status.sent')];
  }

  messageNode(message, continued) {
    const { state } = this.app;
    const conv = this.conv;
    const mine = message.userid === state.me.id;
    const sender = state.users.get(message.userid) || { id: message.userid, nickname: state.userName(message.userid) };
    const [status, readLabel] = mine ? this.readState(message) : ['received', ''];
    const readCount = mine && conv.kind === GROUP && message.id ? conv.readCount(message.id, state.me.id) : null;
    const progress = message.status === 'uploading' ? Math.round((message.progress || 0) * 100) : null;
    const signature = JSON.stringify([message.id, message.status, status, readLabel, progress, message.error,
      continued, message.url, message.pic, message.content, message.memo, message.amount,
      sender.nickname, sender.avatar, message.ts,
      message.reply, message.edited, message.recalled, message.reactions, message.mentioned,
      message.reply ? state.userName(message.reply.userid) : '']);
    const cached = this.nodes.get(message.key);
    if (cached && cached.signature === signature) return cached.node;
    const replaces = cached && cached.node.isConnected ? cached.node : null;

    const ts = message.ts || message.localTs || Date.now();
    const showSender = !mine && conv.kind === GROUP && !continued;
    const recalled = Boolean(message.recalled);
    const sticker = !recalled && message.media === IMAGE && isSticker(message.url);
    const photo = !recalled && message.media === IMAGE && !sticker;
    const voice = !recalled && message.media === VOICE;
    const file = !recalled && message.media === FILE;
    const size = !recalled && !message.reply && message.media === TEXT ? emojiSize(message.content) : '';
    const jumbo = size === 'jumbo';
    const bubbleClass = ['bubble', sticker ? 'is-sticker' : '', photo ? 'is-photo' : '', jumbo ? 'is-jumbo' : '',
      size === 'emoji' ? 'is-emoji' : '',
      voice ? 'is-voice' : '', file ? 'is-file' : ''].filter(Boolean).join(' ');

    const meta = h('span', { class: 'meta' },
      message.edited && !recalled ? h('span', { class: 'edited', title: formatDateTime(message.edited), text: t('message.edited') }) : null,
      h('time', { datetime: new Date(ts).toISOString(), title: formatDateTime(ts), text: clockTime(ts) }),
      mine ? this.statusMark(message, status, readLabel, readCount, progress) : null);

    const node = h('li', {
      class: `msg ${mine ? 'mine' : 'theirs'}${continued ? ' continued' : ''}${message.mentioned ? ' mentioned' : ''}${recalled ? ' recalled' : ''}`,
      dataset: { key: message.key, id: message.id ? String(message.id) : '', status, media: String(message.media) },
    },
    mine ? null : (continued ? h('span', { class: 'avatar-space' }) : avatar(sender, { size: 'sm' })),
    h('div', { class: bubbleClass },
      showSender ? h('p', { class: 'sender', text: sender.nickname }) : null,
      message.reply ? this.quote(message.reply) : null,
      recalled ? h('p', { class: 'recalled-text', text: t('message.recalled') }) : this.body(message, { sticker, photo, progress }),
      meta,
      this.reactionChips(message),
      message.status === 'failed' ? this.failure(message) : null),
    message.id ? h('button', {
      type: 'button', class: 'msg-more', 'aria-label': t('menu.open'), 'aria-haspopup': 'menu', text: '⋯',
      onclick: (event) => { event.stopPropagation(); this.openMenu(message, event.currentTarget); },
    }) : null);
    this.nodes.set(message.key, { node, signature });
    // Changed in place (a tick, a read count): swap it where it stands.
    if (replaces) replaces.replaceWith(node);
    return node;
  }

  body(message, { sticker, photo, progress }) {
    if (message.media === VOICE) return this.voiceBody(message, progress);
    if (message.media === FILE) return this.fileCard(message, progress);
    if (sticker) {
      const url = localUrl(message.url);
      return h('img', { class: 'sticker', src: url, alt: t('media.sticker'), loading: 'lazy', width: 128, height: 128, onload: () => this.imageLoaded() });
    }
    if (photo) {
      const thumb = localUrl(message.pic) || localUrl(message.url) || message.localUrl || '';
      const full = localUrl(message.url);
      const img = h('img', { src: thumb, alt: t('media.photo'), loading: 'lazy', onload: () => this.imageLoaded() });
      const frame = full
        ? h('button', { type: 'button', class: 'photo', 'aria-label': t('media.open_photo'), onclick: () => this.showPhoto(full) }, img)
        : h('span', { class: 'photo' }, img);
      if (progress !== null) {
        frame.append(h('span', { class: 'upload' },
          h('progress', { max: 100, value: progress, 'aria-label': t('upload.progress') }),
          h('button', { type: 'button', class: 'link', text: t('common.cancel'), onclick: () => this.app.discard(this.conv, message) })));
      }
      return frame;
    }
    return h('p', { class: 'text' }, linkify(String(message.content || ''))); // text nodes, never HTML
  }

  statusMark(message, status, readLabel, readCount, progress) {
    if (status === 'uploading') return h('span', { class: 'status', text: `${progress}%` });
    const name = { pending: 'clock', sent: 'check', read: 'checks', failed: 'alert' }[status] || 'check';
    const label = { pending: t('status.pending'), failed: t('status.failed') }[status] || readLabel;
    // An image with a name: the tick's meaning is spoken, not carried by its colour alone.
    return h('span', { class: `status status-${status}`, role: 'img', title: label, 'aria-label': label },
      icon(name), readCount ? h('span', { class: 'read-count', text: String(readCount) }) : null);
  }

  failure(message) {
    const conv = this.conv;
    const buttons = [];
    if (message.file) {
      buttons.push(h('button', { type: 'button', class: 'link', text: t('common.retry'),
        onclick: () => this.app.sendUpload(conv, message.file, message.kind || 'image', message) }));
    }
    buttons.push(h('button', { type: 'button', class: 'link', text: t('failure.remove'), onclick: () => this.app.discard(conv, message) }));
    return h('p', { class: 'failure', role: 'alert' }, `${t('failure.not_sent', { reason: message.error || t('failure.unknown') })} `, buttons);
  }

  // -- the message lifecycle: quotes, reactions, the menu, replies, edits, mentions ----

  quote(reply) {
    const name = this.app.state.userName(reply.userid);
    const text = reply.recalled ? t('message.recalled') : (reply.media === IMAGE ? t('preview.photo') : reply.content);
    return h('button', {
      type: 'button', class: 'quote', 'aria-label': t('quote.label', { name, text }),
      onclick: () => this.scrollToMessage(reply.id),
    }, h('span', { class: 'quote-name', text: name }), h('span', { class: 'quote-text', text }));
  }

  reactionChips(message) {
    const entries = Object.entries(message.reactions || {}).filter(([, users]) => users.length);
    if (!entries.length) return null;
    const me = this.app.state.me.id;
    return h('div', { class: 'reactions' }, entries.map(([emoji, users]) => {
      const on = users.includes(me);
      const names = users.map((u) => this.app.state.userName(u)).join(', ');
      return h('button', {
        type: 'button', class: `chip${on ? ' on' : ''}`, 'aria-pressed': on ? 'true' : 'false',
        title: names, 'aria-label': t('reaction.label', { emoji, count: users.length, names }), dataset: { emoji },
        onclick: () => this.app.sendChange({ cmd: REACT, id: message.id, emoji, on: !on }),
      }, h('span', { text: emoji }), h('span', { class: 'chip-count', text: String(users.length) }));
    }));
  }

  /** Bring message `id` into view, loading older pages until it is there. */
  async scrollToMessage(id) {
    const conv = this.conv;
    for (let page = 0; page < 50 && conv === this.conv; page++) {
      const node = this.el.list.querySelector(`[data-id="${id}"]`);
      if (node) {
        this.stick = false;
        node.scrollIntoView({ block: 'center' });
        node.classList.add('flash');
        setTimeout(() => node.classList.remove('flash'), 1300);
        return;
      }
      if (!conv.hasOlder) return;
      const request = this.app.loadOlder(conv);
      if (request) await request;
      this.render();
    }
  }

  setupLifecycle() {
    const e = this.el;
    e.barCancel.addEventListener('click', () => this.cancelCompose(true));
    document.addEventListener('pointerdown', (event) => {
      if (!e.menu.hidden && !e.menu.contains(event.target) && !event.target.closest?.('.msg-more')) this.closeMenu();
      if (!e.mentionPicker.hidden && !e.mentionPicker.contains(event.target) && event.target !== e.input) this.closeMentions();
    });
    e.menu.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') { event.preventDefault(); this.closeMenu(true); return; }
      // The menu pattern: arrows move between the items, Home and End to the ends, Tab
      // leaves (and closes) it.
      const items = [...e.menu.querySelectorAll('button')];
      const at = items.indexOf(document.activeElement);
      const next = { ArrowDown: at + 1, ArrowRight: at + 1, ArrowUp: at - 1, ArrowLeft: at - 1,
        Home: 0, End: items.length - 1 }[event.key];
      if (event.key === 'Tab') { this.closeMenu(); return; }
      if (next === undefined) return;
      event.preventDefault();
      items[(next + items.length) % items.length]?.focus();
    });
    // Long press on a phone, right click on a desktop: the same menu.
    let timer = 0;
    const messageOf = (target) => {
      const li = target.closest?.('.msg');
      if (!li || !li.dataset.id || !this.conv) return null;
      return this.conv.messages.find((m) => m.id === Number(li.dataset.id)) || null;
    };
    e.list.addEventListener('contextmenu', (event) => {
      const message = messageOf(event.target);
      if (!message) return;
      event.preventDefault();
      this.openMenu(message, event.target.closest('.msg').querySelector('.msg-more') || event.target);
    });
    let pressed = false; // the press lasted: the menu is open
    e.list.addEventListener('touchstart', (event) => {
      pressed = false;
      const message = messageOf(event.target);
      if (!message) return;
      timer = setTimeout(() => {
        pressed = true;
        this.openMenu(message, event.target.closest('.msg').querySelector('.msg-more') || event.target);
      }, LONG_PRESS);
    }, { passive: true });
    e.list.addEventListener('touchend', (event) => {
      clearTimeout(timer);
      // Lifting the finger after a long press: no mouse events and no click follow (a
      // touchend's default), or their mousedown would take the focus from the menu just
      // opened to the history around the message.
      if (pressed) event.preventDefault();
      pressed = false;
    });
    for (const type of ['touchmove', 'touchcancel']) {
      e.list.addEventListener(type, () => clearTimeout(timer), { passive: true });
    }
    e.input.addEventListener('input', () => this.updateMentions());
    e.input.addEventListener('keydown', (event) => {
      // Esc closes the innermost thing first: the picker of whom to mention, then (a
      // second Esc) the reply or edit.
      if (event.key === 'Escape' && !e.mentionPicker.hidden) {
        event.preventDefault();
        this.closeMentions();
        return;
      }
      if (event.key === 'Escape' && (this.replyTo || this.editing)) this.cancelCompose(true);
      if (event.key === 'ArrowDown' && !e.mentionPicker.hidden) {
        event.preventDefault();
        e.mentionPicker.querySelector('button')?.focus();
      }
    });
  }

  /** What the menu offers for `message`: the server decides, the menu only guesses. */
  actions(message) {
    const { state } = this.app;
    const me = state.me.id;
    const mine = message.userid === me;
    const age = (Date.now() - (message.ts || 0)) / 1000;
    const moderator = this.conv.kind === GROUP && this.moderates(this.conv.dstid);
    const live = !message.recalled;
    return {
      reply: live,
      edit: live && mine && message.media === TEXT && age < state.editWindow,
      recall: live && ((mine && age < state.recallWindow) || moderator),
      react: live,
      remove: true,
    };
  }

  /** Whether I moderate group `groupId` (its owner or an admin): the server lets them
   * recall anyone's message and mention @all (fastim/chat/lifecycle.py, may_moderate).
   * The member list (roles) decides once it is loaded; the group's owner id until then. */
  moderates(groupId) {
    const { state } = this.app;
    const me = state.me.id;
    const mine = state.members.get(groupId)?.find((m) => m.id === me);
    if (mine) return mine.role === 'owner' || mine.role === 'admin';
    return state.groups.get(groupId)?.ownerid === me;
  }

  openMenu(message, anchor) {
    const e = this.el;
    const can = this.actions(message);
    const me = this.app.state.me.id;
    const item = (label, action, cls = '') => h('button', {
      type: 'button', role: 'menuitem', class: cls, text: label, dataset: { action },
      onclick: () => { this.closeMenu(); this.menuAction(action, message); },
    });
    const reactions = message.reactions || {};
    // Through appendChildren, which skips the items not offered: replaceChildren(null)
    // would put the word "null" in the menu, once per missing item.
    e.menu.replaceChildren();
    appendChildren(e.menu, [
      can.react ? h('div', { class: 'react-row', role: 'group', 'aria-label': t('menu.react') }, QUICK_REACTIONS.map((emoji) => {
        const on = (reactions[emoji] || []).includes(me);
        return h('button', {
          // Inside a role=menu only menu items may be (WAI-ARIA 1.2, menu): a reaction
          // is a checkable one.
          type: 'button', role: 'menuitemcheckbox', 'aria-label': t('menu.react_with', { emoji }),
          'aria-checked': on ? 'true' : 'false', text: emoji, dataset: { emoji },
          onclick: () => { this.closeMenu(); this.app.sendChange({ cmd: REACT, id: message.id, emoji, on: !on }); },
        });
      })) : null,
      can.reply ? item(t('menu.reply'), 'reply') : null,
      can.edit ? item(t('menu.edit'), 'edit') : null,
      can.recall ? item(t('menu.recall'), 'recall', 'danger') : null,
      can.remove ? item(t('menu.delete'), 'delete', 'danger') : null,
    ]);
    e.menu.hidden = false;
    const box = e.section.getBoundingClientRect();
    const at = anchor.getBoundingClientRect();
    const width = e.menu.offsetWidth;
    const height = e.menu.offsetHeight;
    let top = at.bottom - box.top + 4;
    if (top + height > box.height - 8) top = Math.max(8, at.top - box.top - height - 4);
    const left = Math.min(Math.max(8, at.left - box.left - width / 2), box.width - width - 8);
    e.menu.style.top = `${top}px`;
    e.menu.style.left = `${left}px`;
    anchor.setAttribute?.('aria-expanded', 'true');
    this.menuAnchor = anchor;
    e.menu.querySelector('button')?.focus();
  }

  closeMenu(refocus = false) {
    this.el.menu.hidden = true;
    if (this.menuAnchor) {
      this.menuAnchor.setAttribute?.('aria-expanded', 'false');
      if (refocus) this.menuAnchor.focus?.();
      this.menuAnchor = null;
    }
  }

  menuAction(action, message) {
    const e = this.el;
    if (action === 'reply') {
      this.editing = null;
      this.replyTo = message;
      const text = message.media === IMAGE ? t('preview.photo') : message.content;
      this.showBar(t('compose.replying', { name: this.app.state.userName(message.userid), text }));
    } else if (action === 'edit') {
      this.replyTo = null;
      this.editing = message;
      this.showBar(t('compose.editing'));
      e.input.value = message.content;
      this.resizeInput();
    } else if (action === 'recall') {
      this.app.sendChange({ cmd: RECALL, id: message.id });
    } else if (action === 'delete') {
      this.app.sendChange({ cmd: DELETE, id: message.id });
    }
    e.input.focus();
  }

  showBar(text) {
    this.el.barText.textContent = text;
    this.el.bar.hidden = false;
  }

  cancelCompose(clear = false) {
    if (clear && this.editing) this.el.input.value = '';
    this.replyTo = null;
    this.editing = null;
    this.el.bar.hidden = true;
    this.mentioned.clear();
    this.closeMentions();
  }

  /** A change of ours the server refused (not the sender, too late, …): said briefly. */
  notice(text) {
    alertLater(text);
  }

  // @ in a group's composer: a member picker; the chosen names become `mentions`.
  updateMentions() {
    const e = this.el;
    if (!this.conv || this.conv.kind !== GROUP || this.editing) { this.closeMentions(); return; }
    const before = e.input.value.slice(0, e.input.selectionStart ?? e.input.value.length);
    const match = /(?:^|\s)@([^\s@]*)$/u.exec(before);
    if (!match) { this.closeMentions(); return; }
    const query = match[1].toLowerCase();
    const { state } = this.app;
    const me = state.me.id;
    const members = (state.members.get(this.conv.dstid) || []).filter((m) => m.id !== me);
    const choices = members.filter((m) => (m.nickname || '').toLowerCase().includes(query)).slice(0, 8)
      .map((m) => ({ id: m.id, name: m.nickname }));
    if (this.moderates(this.conv.dstid) && 'all'.startsWith(query)) choices.unshift({ id: 'all', name: 'all' });
    if (!choices.length) { this.closeMentions(); return; }
    e.mentionPicker.replaceChildren(...choices.map((c) => h('li', { role: 'option' },
      h('button', {
        type: 'button', text: c.id === 'all' ? t('mention.all') : `@${c.name}`, dataset: { user: String(c.id) },
        onclick: () => this.pickMention(c, match[1].length),
        onkeydown: (event) => {
          if (event.key === 'ArrowDown') { event.preventDefault(); event.currentTarget.parentElement.nextElementSibling?.querySelector('button')?.focus(); }
          if (event.key === 'ArrowUp') { event.preventDefault(); (event.currentTarget.parentElement.previousElementSibling?.querySelector('button') || e.input).focus(); }
          if (event.key === 'Escape') { event.preventDefault(); this.closeMentions(); e.input.focus(); }
        },
      }))));
    e.mentionPicker.hidden = false;
    // A textarea may not carry aria-expanded (it is no combobox): it names the picker it
    // opened instead, while the picker is open.
    e.input.setAttribute('aria-controls', 'mention-picker');
  }

  pickMention(choice, typed) {
    const input = this.el.input;
    const end = input.selectionStart ?? input.value.length;
    input.setRangeText(`${choice.name} `, end - typed, end, 'end');
    this.mentioned.set(`@${choice.name}`, choice.id);
    this.closeMentions();
    input.focus();
  }

  closeMentions() {
    this.el.mentionPicker.hidden = true;
    this.el.input.removeAttribute('aria-controls');
  }

  /** The mentions of `text`: the picked names still in it. */
  mentionsOf(text) {
    const ids = [];
    for (const [name, id] of this.mentioned) {
      if (!text.includes(name)) continue;
      if (id === 'all') return 'all';
      ids.push(id);
    }
    return ids;
  }

  // -- scrolling ------------------------------------------------------------------------

  atBottom() {
    const s = this.el.scroller;
    return !s.hidden && s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM;
  }

  scrollToBottom() {
    const s = this.el.scroller;
    s.scrollTop = s.scrollHeight;
    this.stick = true;
    this.newBelow = 0;
    this.renderJump();
  }

  /** Where an opened conversation starts: at the unread divider when it was opened with
   * unread messages (older pages are loaded until the first unread is there), else at
   * the newest message. What is on screen then counts as read, no more. */
  async showStart() {
    const conv = this.conv;
    if (!conv) return;
    if (!conv.loaded || !conv.divider || conv.divider.shown) {
      if (!conv.divider || !conv.divider.shown) this.scrollToBottom();
      if (conv.loaded) this.markVisible();
      return;
    }
    conv.divider.shown = true;
    for (let page = 0; page < 25 && conv === this.conv && !this.firstUnread() && conv.hasOlder; page++) {
      const request = this.app.loadOlder(conv);
      if (!request) break;
      await request;
      this.render();
    }
    if (conv !== this.conv) return;
    conv.divider.placed = true;
    conv.divider.key = this.firstUnread()?.key || null;
    if (!conv.divider.key) conv.divider = null;
    this.render();
    const divider = this.el.list.querySelector('.unread-divider');
    if (divider) {
      const scroller = this.el.scroller;
      const above = divider.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
      scroller.scrollTop = Math.max(0, scroller.scrollTop + above - 8);
      this.stick = this.atBottom();
    } else {
      this.scrollToBottom();
    }
    this.renderJump();
    this.markVisible();
  }

  /** Opened with unread messages and not yet at the first of them: nothing is read yet,
   * whatever passes the screen meanwhile. */
  findingStart() {
    const conv = this.conv;
    return Boolean(conv && conv.divider && !conv.divider.placed);
  }

  /** The newest stored message whose bubble is at least partly on screen. */
  lastVisibleId() {
    const s = this.el.scroller;
    if (s.hidden) return 0;
    const bottom = s.getBoundingClientRect().bottom;
    const items = this.el.list.children;
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (!item.dataset.id) continue;
      if (item.getBoundingClientRect().top < bottom) return Number(item.dataset.id);
    }
    return 0;
  }

  /** Tell the server how far the person has read: up to what they have seen. */
  markVisible() {
    const conv = this.conv;
    if (!conv || !conv.loaded || this.findingStart() || document.visibilityState !== 'visible') return;
    const upto = this.atBottom() ? conv.newestId : this.lastVisibleId();
    if (upto) this.app.markRead(conv, upto);
    this.renderJump();
  }

  /** "Jump to latest": shown while scrolled up with something newer below. */
  renderJump() {
    const conv = this.conv;
    const button = this.jump;
    const show = Boolean(conv && !this.el.scroller.hidden && !this.atBottom() && (this.newBelow > 0 || conv.unread > 0));
    button.hidden = !show;
    const count = this.newBelow || (conv ? conv.unread : 0);
    this.jumpCount.hidden = !count;
    this.jumpCount.textContent = count ? t('chat.jump_to_latest_new', { count }) : '';
  }

  /** A change to the open conversation's messages; `mine`: the user just sent one. */
  messagesChanged(atEnd, mine = false) {
    if (mine || (atEnd && (this.stick || this.atBottom()))) this.stick = true;
    else if (atEnd) {
      this.newBelow += 1;
      queueMicrotask(() => this.renderJump());
    }
  }

  imageLoaded() {
    if (this.stick) this.scrollToBottom();
  }

  setupScroller() {
    const s = this.el.scroller;
    this.jump = byId('jump-latest');
    this.jumpCount = byId('jump-count');
    byId('jump-text').textContent = t('chat.jump_to_latest');
    this.jump.addEventListener('click', () => {
      this.scrollToBottom();
      this.markVisible();
      this.el.input.focus({ preventScroll: true });
    });
    let queued = false;
    s.addEventListener('scroll', () => {
      this.stick = this.atBottom();
      if (this.stick) this.newBelow = 0;
      this.maybeLoadOlder();
      // Reading follows the scrolling, once a frame.
      if (!queued) {
        queued = true;
        requestAnimationFrame(() => { queued = false; this.markVisible(); });
      }
    }, { passive: true });
  }

  maybeLoadOlder() {
    const conv = this.conv;
    if (!conv || !conv.loaded || !conv.hasOlder || conv.loadingOlder) return;
    if (this.el.scroller.scrollTop > NEAR_TOP) return;
    const request = this.app.loadOlder(conv);
    if (request) request.then(() => this.app.invalidate('conv'));
  }

  // -- composing ------------------------------------------------------------------------

  setupComposer() {
    const e = this.el;
    // On a touch keyboard there is no Shift to hold: Enter makes a new line there, as in
    // every messenger, and the send button sends.
    const touch = touchKeyboard();
    e.input.setAttribute('enterkeyhint', touch ? 'enter' : 'send');
    e.input.addEventListener('keydown', (event) => {
      // Enter sends, Shift+Enter is a new line; never while an IME is composing.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey && !touch) {
        event.preventDefault();
        this.submit();
      } else if (event.key === 'Escape') {
        this.closePickers();
      }
    });
    e.input.addEventListener('input', () => {
      this.resizeInput();
      if (this.conv && e.input.value.trim()) this.app.sendTyping(this.conv);
    });
    e.composer.addEventListener('submit', (event) => { event.preventDefault(); this.submit(); });
    e.attach.addEventListener('click', () => e.file.click());
    e.attachDoc.addEventListener('click', () => e.docFile.click());
    e.docFile.addEventListener('change', () => {
      this.sendFiles(e.docFile.files, { photos: false });
      e.docFile.value = '';
    });
    e.file.addEventListener('change', () => {
      this.sendFiles(e.file.files);
      e.file.value = '';
    });
    e.input.addEventListener('paste', (event) => {
      const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith('image/'));
      if (files.length) { event.preventDefault(); this.sendFiles(files); }
    });
    e.section.addEventListener('dragover', (event) => {
      if (this.conv && event.dataTransfer?.types.includes('Files')) { event.preventDefault(); e.section.classList.add('dropping'); }
    });
    e.section.addEventListener('dragleave', () => e.section.classList.remove('dropping'));
    e.section.addEventListener('drop', (event) => {
      e.section.classList.remove('dropping');
      if (!this.conv || !event.dataTransfer?.files.length) return;
      event.preventDefault();
      this.sendFiles(event.dataTransfer.files);
    });
  }

  submit() {
    const e = this.el;
    if (!this.conv) return;
    if (this.recording) { this.stopRecording(true); return; } // Send while recording sends it
    const text = e.input.value;
    if (!text.trim()) return;
    if (this.editing) {
      if (text !== this.editing.content) this.app.sendChange({ cmd: EDIT, id: this.editing.id, content: text });
    } else {
      const extra = {};
      if (this.replyTo) {
        const r = this.replyTo;
        extra.reply_to = r.id;
        extra.reply = { id: r.id, userid: r.userid, media: r.media, content: (r.content || '').slice(0, 100) };
      }
      if (this.conv.kind === GROUP) {
        const mentions = this.mentionsOf(text);
        if (mentions === 'all' || mentions.length) extra.mentions = mentions;
      }
      this.app.sendText(this.conv, text, extra);
    }
    this.cancelCompose();
    e.input.value = '';
    this.drafts.delete(this.conv.key);
    this.resizeInput();
    this.closePickers();
    e.input.focus();
  }

  /** Photos go as photos (unless `photos` is false), anything else as a file. */
  sendFiles(files, { photos = true } = {}) {
    for (const file of files) {
      const photo = photos && /^image\/(png|jpeg|gif|webp)$/.test(file.type) && file.size <= MAX_PHOTO_BYTES;
      if (photo) {
        this.app.sendPhoto(this.conv, file);
      } else if (file.size > MAX_FILE_BYTES) {
        alertLater(t('file.too_large', { name: file.name }));
      } else if (file.size === 0) {
        alertLater(t('file.empty', { name: file.name }));
      } else {
        this.app.sendFile(this.conv, file);
      }
    }
  }

  // -- voice messages: recording ----------------------------------------------------------

  setupRecorder() {
    const e = this.el;
    e.record.addEventListener('click', () => {
      if (this.recording) this.stopRecording(true);
      else this.startRecording();
    });
    e.recCancel.addEventListener('click', () => this.cancelRecording());
  }

  async startRecording() {
    if (!this.conv || this.recording || this.askingMicrophone) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === 'undefined') {
      alertLater(t('voice.unsupported'));
      return;
    }
    let stream;
    this.askingMicrophone = true; // a second click while the browser asks starts nothing
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      alertLater(t('voice.no_microphone'));
      return;
    } finally {
      this.askingMicrophone = false;
    }
    if (!this.conv) { for (const track of stream.getTracks()) track.stop(); return; }
    const mimeType = RECORDING_TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || '';
    const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
    const recording = { conv: this.conv, recorder, stream, chunks: [], started: performance.now(), send: false, timer: 0 };
    this.recording = recording;
    recorder.addEventListener('dataavailable', (event) => { if (event.data.size) recording.chunks.push(event.data); });
    recorder.addEventListener('stop', () => this.recorded(recording));
    recorder.start(250);
    const e = this.el;
    e.recorder.hidden = false;
    e.input.hidden = true;
    e.record.classList.add('is-recording');
    e.record.setAttribute('aria-pressed', 'true');
    e.record.setAttribute('aria-label', t('voice.stop_and_send'));
    e.record.replaceChildren(icon('stop'));
    const tick = () => {
      const seconds = (performance.now() - recording.started) / 1000;
      e.recTime.textContent = duration(seconds);
      if (seconds >= MAX_VOICE_SECONDS) this.stopRecording(true);
    };
    tick();
    recording.timer = setInterval(tick, 200);
  }

  /** Stop; `send`: upload and send what was recorded, else throw it away. */
  stopRecording(send) {
    const recording = this.recording;
    if (!recording) return;
    this.recording = null;
    recording.send = send;
    recording.seconds = (performance.now() - recording.started) / 1000;
    clearInterval(recording.timer);
    if (recording.recorder.state !== 'inactive') recording.recorder.stop();
    else this.recorded(recording);
    for (const track of recording.stream.getTracks()) track.stop();
    const e = this.el;
    e.recorder.hidden = true;
    e.recTime.textContent = '0:00';
    e.input.hidden = false;
    e.record.classList.remove('is-recording');
    e.record.setAttribute('aria-pressed', 'false');
    e.record.setAttribute('aria-label', t('voice.record'));
    e.record.replaceChildren(icon('mic'));
  }

  cancelRecording() { this.stopRecording(false); }

  recorded(recording) {
    if (!recording.send || !recording.chunks.length) return;
    const type = (recording.recorder.mimeType || recording.chunks[0].type || 'audio/webm').split(';')[0];
    const blob = new Blob(recording.chunks, { type });
    const file = new File([blob], `voice.${EXTENSIONS[type] || 'webm'}`, { type });
    this.app.sendVoice(recording.conv, file, recording.seconds);
  }

  // -- voice messages: playing ------------------------------------------------------------

  voiceBody(message, progress) {
    const src = localUrl(message.url) || message.localUrl || '';
    let player = this.players.get(message.key);
    if (!player || player.src !== src) {
      player = this.voicePlayer(src, message.amount);
      this.players.set(message.key, player);
    }
    player.setLength(message.amount);
    if (progress === null) return player.node;
    return h('div', { class: 'voice-wrap' }, player.node, this.uploadBar(message, progress));
  }

  voicePlayer(src, amount) {
    const audio = new Audio();
    audio.preload = 'metadata';
    if (src) audio.src = src;
    const button = h('button', { type: 'button', class: 'icon-button voice-play', 'aria-label': t('voice.play') }, icon('play'));
    const bar = h('progress', { class: 'voice-progress', max: 1, value: 0, 'aria-label': t('voice.played') });
    const time = h('span', { class: 'voice-time', text: duration(amount) });
    const node = h('div', { class: 'voice', dataset: { state: 'paused' } }, button, bar, time);
    let length = Number(amount) || 0;
    const show = () => {
      const total = Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration : length;
      bar.value = total ? Math.min(1, audio.currentTime / total) : 0;
      time.textContent = audio.currentTime > 0 && !audio.ended
        ? `${duration(audio.currentTime)} / ${duration(total)}` : duration(total);
    };
    const setState = (state) => {
      node.dataset.state = state;
      button.replaceChildren(icon(state === 'playing' ? 'pause' : 'play'));
      button.setAttribute('aria-label', state === 'playing' ? t('voice.pause') : t('voice.play'));
    };
    audio.addEventListener('timeupdate', show);
    audio.addEventListener('loadedmetadata', show);
    audio.addEventListener('play', () => {
      if (playing && playing !== audio) playing.pause(); // one at a time
      playing = audio;
      setState('playing');
    });
    audio.addEventListener('pause', () => setState('paused'));
    audio.addEventListener('ended', () => { setState('ended'); audio.currentTime = 0; show(); });
    button.addEventListener('click', () => {
      if (audio.paused) audio.play().catch(() => setState('error'));
      else audio.pause();
    });
    // Seek by clicking the bar (Range requests fetch only what is needed).
    bar.addEventListener('click', (event) => {
      const total = Number.isFinite(audio.duration) ? audio.duration : length;
      if (!total) return;
      const rect = bar.getBoundingClientRect();
      audio.currentTime = Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width)) * total;
    });
    return { node, src, audio, setLength: (seconds) => { length = Number(seconds) || length; show(); } };
  }

  // -- files ------------------------------------------------------------------------------

  fileCard(message, progress) {
    const name = message.memo || t('file.default_name');
    const extension = name.includes('.') ? name.split('.').pop().slice(0, 4).toUpperCase() : '';
    const href = fileUrl(message.url);
    const parts = [
      h('span', { class: 'file-icon', dataset: { ext: extension } }, icon('file'), extension ? h('span', { class: 'file-ext', text: extension }) : null),
      h('span', { class: 'file-text' },
        h('span', { class: 'file-name', text: name, title: name }),
        h('span', { class: 'file-size', text: fileSize(message.amount) })),
    ];
    const card = href
      ? h('a', { class: 'file-card', href, download: name, title: t('file.download', { name }) }, parts)
      : h('span', { class: 'file-card' }, parts);
    if (progress === null) return card;
    return h('div', { class: 'file-wrap' }, card, this.uploadBar(message, progress));
  }

  uploadBar(message, progress) {
    return h('span', { class: 'upload inline' },
      h('progress', { max: 100, value: progress, 'aria-label': t('upload.progress') }),
      h('button', { type: 'button', class: 'link', text: t('common.cancel'), onclick: () => this.app.discard(this.conv, message) }));
  }

  resizeInput() {
    const input = this.el.input;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  insertText(text) {
    const input = this.el.input;
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.setRangeText(text, start, end, 'end');
    input.dispatchEvent(new Event('input'));
    input.focus();
  }

  // -- emoji and sticker pickers ------------------------------------------------------

  setupPickers() {
    const e = this.el;
    e.emojiButton.addEventListener('click', () => this.togglePicker('emoji'));
    e.stickerButton.addEventListener('click', () => this.togglePicker('sticker'));
    // Esc in a picker, or on its button while it opens (stickers load first), closes it.
    for (const picker of [e.emojiPicker, e.stickerPicker, e.emojiButton, e.stickerButton]) {
      picker.addEventListener('keydown', (event) => {
        if (event.key === 'Escape' && !(e.emojiPicker.hidden && e.stickerPicker.hidden)) {
          event.preventDefault();
          this.closePickers('button');
        }
      });
    }
    gridKeys(e.emojiPicker, 'button.emoji');
    gridKeys(e.stickerPicker, 'button.sticker-choice');
    document.addEventListener('pointerdown', (event) => {
      const inside = [e.emojiPicker, e.stickerPicker, e.emojiButton, e.stickerButton].some((el) => el.contains(event.target));
      if (!inside) this.closePickers();
    });
  }

  togglePicker(which) {
    const e = this.el;
    const picker = which === 'emoji' ? e.emojiPicker : e.stickerPicker;
    const button = which === 'emoji' ? e.emojiButton : e.stickerButton;
    const opening = picker.hidden;
    this.closePickers();
    if (!opening) return;
    if (which === 'emoji') this.fillEmoji();
    else this.fillStickers();
    picker.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    picker.querySelector('button')?.focus();
  }

  /** `refocus`: true puts focus in the composer, 'button' back on the picker's button. */
  closePickers(refocus = false) {
    const e = this.el;
    const wasOpen = !e.emojiPicker.hidden || !e.stickerPicker.hidden;
    const opener = !e.emojiPicker.hidden ? e.emojiButton : e.stickerButton;
    e.emojiPicker.hidden = true;
    e.stickerPicker.hidden = true;
    e.emojiButton.setAttribute('aria-expanded', 'false');
    e.stickerButton.setAttribute('aria-expanded', 'false');
    if (refocus === 'button' && wasOpen) opener.focus();
    else if (refocus && wasOpen) e.input.focus();
  }

  fillEmoji() {
    const picker = this.el.emojiPicker;
    if (picker.childElementCount) return;
    for (const [group, list] of EMOJI) {
      picker.append(h('p', { class: 'picker-title', text: group }),
        h('div', { class: 'emoji-grid' }, list.map((emoji) =>
          h('button', { type: 'button', class: 'emoji', title: emoji, 'aria-label': emoji, text: emoji,
            onclick: () => this.insertText(emoji) }))));
    }
  }

  async fillStickers() {
    const picker = this.el.stickerPicker;
    if (picker.dataset.filled) return;
    picker.dataset.filled = 'loading';
    picker.replaceChildren(h('p', { class: 'picker-title', text: t('stickers.loading') }));
    const packs = await loadStickerPacks();
    if (!packs.length) {
      picker.replaceChildren(h('p', { class: 'picker-empty', text: t('stickers.none') }));
      picker.dataset.filled = 'empty';
      return;
    }
    const grid = h('div', { class: 'sticker-grid', role: 'group', 'aria-label': t('composer.stickers') });
    const tabs = h('div', { class: 'pack-tabs', role: 'tablist', 'aria-label': t('stickers.packs') });
    const showPack = (pack) => {
      for (const tab of tabs.children) tab.setAttribute('aria-selected', tab.dataset.pack === pack.id ? 'true' : 'false');
      grid.replaceChildren(...pack.assets.map(({ url, title }) => h('button', {
        type: 'button', class: 'sticker-choice', 'aria-label': t('stickers.send', { title }),
        title, dataset: { url },
        onclick: () => { if (this.conv) this.app.sendSticker(this.conv, url); this.closePickers(true); },
      }, h('img', { src: url, alt: '', loading: 'lazy', width: 72, height: 72 }))));
    };
    for (const pack of packs) {
      tabs.append(h('button', { type: 'button', role: 'tab', class: 'pack-tab', title: pack.name, 'aria-label': pack.name,
        dataset: { pack: pack.id }, onclick: () => showPack(pack) }, h('img', { src: pack.icon, alt: '', width: 28, height: 28 })));
    }
    picker.replaceChildren(tabs, grid);
    showPack(packs[0]);
    picker.dataset.filled = 'yes';
    if (!picker.hidden) grid.querySelector('button')?.focus();
  }

  // -- photos full size -------------------------------------------------------------------

  setupLightbox() {
    const { lightbox } = this.el;
    byId('lightbox-close').addEventListener('click', () => lightbox.close());
    lightbox.addEventListener('click', (event) => { if (event.target === lightbox || event.target === this.el.lightboxImg) lightbox.close(); });
  }

  showPhoto(url) {
    this.el.lightboxImg.src = url;
    this.el.lightbox.showModal();
  }
}

/**
 * Arrow keys in a grid of buttons (the emoji and sticker pickers): ←/→ the previous or
 * next one, ↑/↓ the nearest one in the row above or below, Home/End the first and last.
 * One button is the tab stop (roving tabindex), so Tab leaves the grid at once instead
 * of walking through 150 emoji.
 */
function gridKeys(container, selector) {
  const rove = (buttons, target) => {
    for (const b of buttons) b.tabIndex = b === target ? 0 : -1;
    target.focus();
    target.scrollIntoView({ block: 'nearest' });
  };
  container.addEventListener('focusin', (event) => {
    if (!event.target.matches?.(selector)) return;
    for (const b of container.querySelectorAll(selector)) b.tabIndex = b === event.target ? 0 : -1;
  });
  container.addEventListener('keydown', (event) => {
    const current = event.target;
    if (!current.matches?.(selector) || event.altKey || event.ctrlKey || event.metaKey) return;
    const buttons = [...container.querySelectorAll(selector)];
    const at = buttons.indexOf(current);
    let next = null;
    if (event.key === 'ArrowRight') next = buttons[at + 1];
    else if (event.key === 'ArrowLeft') next = buttons[at - 1];
    else if (event.key === 'Home') next = buttons[0];
    else if (event.key === 'End') next = buttons[buttons.length - 1];
    else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      const here = current.getBoundingClientRect();
      const down = event.key === 'ArrowDown';
      let best = null;
      let bestScore = Infinity;
      for (const b of buttons) {
        const r = b.getBoundingClientRect();
        const dy = down ? r.top - here.top : here.top - r.top;
        if (dy < here.height / 2) continue; // same row, or the wrong way
        const score = dy * 1000 + Math.abs(r.left - here.left); // the nearest row first
        if (score < bestScore) { best = b; bestScore = score; }
      }
      next = best;
    } else {
      return;
    }
    event.preventDefault();
    if (next) rove(buttons, next);
  });
}

/** A message that is not worth a modal dialog: shown in the composer's placeholder. */
function alertLater(text) {
  const input = document.getElementById('message');
  if (!input) return;
  const placeholder = input.placeholder;
  input.placeholder = text;
  setTimeout(() => { input.placeholder = placeholder; }, 4000);
}
