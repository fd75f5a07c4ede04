// Notifications (issue 20, docs/client.md): the unread count in the tab's title and as a
// badge on its icon, a short sound (off by default; the profile's setting, remembered
// in this browser), desktop notifications while the page is open but hidden, Web Push
// through the service worker (/sw.js) while it is closed, and muted conversations,
// which do none of these. Permission is asked only when the user clicks the profile's
// button, never on load.
import { api, get } from './api.js';
import { byId } from './dom.js';
import { currentLanguage, errorText, t } from './i18n.js';
import { preview } from './format.js';
import { GROUP, convKey } from './state.js';

const SOUND_KEY = 'fastim.notify.sound';
const HOUR = 3600;
const SUBSCRIBE_WAIT = 20_000; // ms

/** The VAPID public key (base64url) as pushManager.subscribe takes it. */
function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function sameKey(subscription, key) {
  const given = subscription.options?.applicationServerKey;
  if (!given) return true;
  const a = new Uint8Array(given);
  const b = keyBytes(key);
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export class Notifier {
  constructor(app) {
    this.app = app;
    this.mutes = new Map(); // convKey -> until (Unix seconds) or 0: until unmuted
    this.sound = localStorage.getItem(SOUND_KEY) === '1';
    this.icon = document.querySelector('link[rel="icon"]');
    this.plainIcon = this.icon?.href || '';
    this.badgeShown = 0;
    this.audio = null;
    this.pushState = '';

    const sound = byId('notify-sound');
    sound.checked = this.sound;
    sound.addEventListener('change', () => {
      this.sound = sound.checked;
      localStorage.setItem(SOUND_KEY, this.sound ? '1' : '0');
      if (this.sound) this.beep(); // what it sounds like (and a click unlocks audio)
    });
    byId('notify-enable').addEventListener('click', () => this.enable());
    this.listenToWorker();
    byId('conv-mute').addEventListener('click', () => this.toggleMenu());
    for (const button of document.querySelectorAll('#mute-menu [data-hours]')) {
      button.addEventListener('click', () => this.mute(this.app.current, Number(button.dataset.hours)));
    }
    // Esc closes the menu and gives focus back to its button, as every other menu
    // (docs/client.md, "Keyboard"); a click elsewhere closes it too.
    const menu = byId('mute-menu');
    for (const el of [menu, byId('conv-mute')]) {
      el.addEventListener('keydown', (event) => {
        if (event.key !== 'Escape' || menu.hidden) return;
        event.preventDefault();
        event.stopPropagation();
        this.closeMenu(true);
      });
    }
    document.addEventListener('pointerdown', (event) => {
      if (!menu.hidden && !menu.contains(event.target) && !byId('conv-mute').contains(event.target)) this.closeMenu();
    });
    this.renderSettings();
  }

  /** A click on a notification, handled by the service worker (asset/js/sw.js), tells
   * this page which conversation to show (a route such as #/u/7). */
  listenToWorker() {
    if (!('serviceWorker' in navigator)) return;
    navigator.serviceWorker.addEventListener('message', (event) => {
      const data = event.data;
      if (!data || data.type !== 'fastim.open' || !/^#\/[ug]\/\d+$/.test(data.route)) return;
      if (location.hash !== data.route) location.hash = data.route; // app.js routes it
    });
    // Messages wait until the page says it listens (an addEventListener does not).
    navigator.serviceWorker.startMessages();
  }

  /** At start: with permission already given, keep this browser's push subscription
   * known to the server (a new login, or a new server key). No prompt here. */
  start() {
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted') {
      this.subscribePush().catch(() => {});
    }
  }

  // -- mutes ---------------------------------------------------------------------

  /** The muted rows of /contact/loadfriend or /contact/loadcommunity. */
  takeMutes(kind, rows) {
    // What these rows say replaces what was known of this kind (unmuted while away).
    const prefix = convKey(kind, '');
    for (const key of [...this.mutes.keys()]) if (key.startsWith(prefix)) this.mutes.delete(key);
    for (const row of rows) if (row.muted) this.mutes.set(convKey(kind, row.id), row.muted_until || 0);
  }

  /** cmd 70 "mute": this user muted or unmuted a conversation, here or on another device. */
  onMute(frame) {
    const key = convKey(frame.kind, frame.dstid);
    if (frame.muted) this.mutes.set(key, frame.until || 0);
    else this.mutes.delete(key);
    this.app.invalidate('lists', 'conv');
  }

  isMuted(conv) {
    if (!conv || !this.mutes.has(conv.key)) return false;
    const until = this.mutes.get(conv.key);
    return !until || until * 1000 > Date.now();
  }

  toggleMenu() {
    const conv = this.app.current;
    if (!conv) return;
    if (this.isMuted(conv)) {
      this.unmute(conv);
      return;
    }
    const menu = byId('mute-menu');
    if (!menu.hidden) {
      this.closeMenu(true);
      return;
    }
    menu.hidden = false;
    byId('conv-mute').setAttribute('aria-expanded', 'true');
    menu.querySelector('button')?.focus();
  }

  /** Hide the mute menu; `refocus`: focus goes back to its button (Esc, a second click). */
  closeMenu(refocus = false) {
    byId('mute-menu').hidden = true;
    const button = byId('conv-mute');
    button.setAttribute('aria-expanded', 'false');
    if (refocus) button.focus();
  }

  async mute(conv, hours) {
    this.closeMenu(true);
    if (!conv) return;
    const values = { cmd: conv.kind, dstid: conv.dstid };
    if (hours) values.until = Math.floor(Date.now() / 1000) + hours * HOUR;
    try {
      const mute = await api('/contact/mute', values);
      this.mutes.set(conv.key, mute.until || 0);
    } catch (error) {
      this.app.view?.flash?.(errorText(error.message, error.code));
    }
    this.app.invalidate('lists', 'conv');
  }

  async unmute(conv) {
    try {
      await api('/contact/unmute', { cmd: conv.kind, dstid: conv.dstid });
      this.mutes.delete(conv.key);
    } catch (error) {
      this.app.view?.flash?.(errorText(error.message, error.code));
    }
    this.app.invalidate('lists', 'conv');
  }

  renderMuteButton() {
    const conv = this.app.current;
    const button = byId('conv-mute');
    button.hidden = !conv;
    if (!conv) return;
    const muted = this.isMuted(conv);
    button.setAttribute('aria-pressed', String(muted));
    button.setAttribute('aria-label', muted ? t('mute.unmute_button') : t('mute.button'));
    button.textContent = muted ? '🔕' : '🔔';
  }

  // -- title and icon ---------------------------------------------------------------

  /** The tab's title and icon say how many messages are unread, muted ones left out. */
  renderTitle() {
    let total = 0;
    for (const conv of this.app.state.convs.values()) if (!this.isMuted(conv)) total += conv.unread;
    document.title = total ? `(${total}) fastim` : 'fastim';
    this.renderBadge(total);
    this.renderMuteButton();
  }

  renderBadge(count) {
    if (!this.icon || count === this.badgeShown) return;
    this.badgeShown = count;
    this.icon.dataset.badge = String(count);
    if (!count) {
      this.icon.type = 'image/svg+xml';
      this.icon.href = this.plainIcon;
      return;
    }
    const image = new Image();
    image.onload = () => {
      if (this.badgeShown !== count) return; // a newer count is being drawn
      const size = 64;
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = size;
      const g = canvas.getContext('2d');
      g.drawImage(image, 0, 0, size, size);
      g.fillStyle = '#e03131';
      g.beginPath();
      g.arc(size - 20, 20, 20, 0, 2 * Math.PI);
      g.fill();
      g.fillStyle = '#fff';
      g.font = 'bold 26px sans-serif';
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText(count > 99 ? '99' : String(count), size - 20, 21);
      this.icon.type = 'image/png';
      this.icon.href = canvas.toDataURL('image/png');
    };
    image.src = this.plainIcon;
  }

  // -- alerts ---------------------------------------------------------------------

  /** A live message from someone else, left unread: a sound and, while the page is
   * hidden or another window has the focus, a desktop notification; nothing for a
   * muted conversation. */
  alert(conv, message) {
    if (this.isMuted(conv)) return;
    if (this.sound) this.beep();
    if (document.visibilityState === 'visible' && document.hasFocus()) return;
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    const state = this.app.state;
    const sender = state.userName(message.userid);
    const title = conv.kind === GROUP
      ? t('notify.title_group', { name: sender, group: state.groups.get(conv.dstid)?.name || t('notify.a_group') })
      : sender;
    const route = `#/${conv.kind === GROUP ? 'g' : 'u'}/${conv.dstid}`;
    // One per conversation (the tag; a push for it uses the same): a newer one replaces it.
    const options = { body: preview(message), tag: conv.key, renotify: true, data: { url: `/chat${route}` } };
    this.show(title, options, route).catch(() => {});
  }

  /** Through the service worker when there is one (its click handler opens the
   * conversation, and some browsers allow no other kind), else a page notification. */
  async show(title, options, route) {
    const registration = 'serviceWorker' in navigator
      ? await navigator.serviceWorker.getRegistration('/') : null;
    if (registration && registration.active) {
      await registration.showNotification(title, options);
      return;
    }
    const shown = new Notification(title, options);
    shown.onclick = () => {
      window.focus();
      location.hash = route;
      shown.close();
    };
  }

  /** A short, soft two-tone chime, made here (no sound file to fetch). */
  beep() {
    try {
      this.audio = this.audio || new AudioContext();
      const ctx = this.audio;
      const now = ctx.currentTime;
      for (const [freq, at] of [[880, 0], [1320, 0.09]]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, now + at);
        gain.gain.exponentialRampToValueAtTime(0.15, now + at + 0.01);
        gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.12);
        osc.connect(gain).connect(ctx.destination);
        osc.start(now + at);
        osc.stop(now + at + 0.13);
      }
      this.beeps = (this.beeps || 0) + 1;
    } catch { /* no audio here */ }
  }

  // -- permission and Web Push -----------------------------------------------------------

  /** The profile's button: ask for permission (a user's click, as browsers want), then
   * subscribe this browser to Web Push. */
  async enable() {
    if (typeof Notification === 'undefined') return;
    const answer = await Notification.requestPermission();
    if (answer === 'granted') {
      try { await this.subscribePush(); } catch (error) {
        this.pushState = t('notify.push_failed', { reason: error.message || error });
      }
    }
    this.renderSettings();
  }

  async subscribePush() {
    if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
      this.pushState = t('notify.push_unsupported');
      this.renderSettings();
      return null;
    }
    // The language in the worker's URL: it shows a push without a title in it (sw.js).
    const worker = `/sw.js?lang=${encodeURIComponent(currentLanguage())}`;
    const registration = await navigator.serviceWorker.register(worker, { scope: '/' });
    await navigator.serviceWorker.ready;
    const { key } = await get('/user/push');
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameKey(subscription, key)) {
      await subscription.unsubscribe(); // the server's key changed: subscribe again
      subscription = null;
    }
    if (!subscription) {
      // A browser that cannot reach its push service may never answer: give up after a
      // while (the page's own notifications work without it).
      subscription = await Promise.race([
        registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }),
        new Promise((resolve, reject) => setTimeout(() => reject(new Error('the push service did not answer')), SUBSCRIBE_WAIT)),
      ]);
    }
    // The pushes are to be written in this page's language (a switch reloads the page,
    // and this runs again at its start).
    await api('/user/push', { ...subscription.toJSON(), lang: currentLanguage() });
    this.pushState = t('notify.push_on');
    this.renderSettings();
    return subscription;
  }

  renderSettings() {
    const button = byId('notify-enable');
    const status = byId('notify-state');
    if (typeof Notification === 'undefined') {
      button.hidden = true;
      status.textContent = t('notify.unsupported');
      return;
    }
    const permission = Notification.permission;
    button.hidden = permission !== 'default';
    status.textContent = permission === 'granted' ? `${t('notify.on')} ${this.pushState}`.trim()
      : permission === 'denied' ? t('notify.blocked') : t('notify.offer');
  }
}
