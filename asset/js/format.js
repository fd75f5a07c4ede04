// How times, names and avatars look.
import { h, localUrl } from './dom.js';
import { dateFormat, formatClock, t } from './i18n.js';

/** 14:05 */
export function clockTime(ms) {
  return formatClock(ms);
}

function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** A day separator's label: Today, Yesterday, Monday, or 3 March 2025 (今天, 昨天, 星期一,
 * 2025年3月3日), in the page's language. */
export function dayLabel(ms, now = Date.now()) {
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86400000);
  if (days === 0) return t('date.today');
  if (days === 1) return t('date.yesterday');
  const d = new Date(ms);
  if (days > 1 && days < 7) return dateFormat({ weekday: 'long' }).format(d);
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return dateFormat(sameYear
    ? { day: 'numeric', month: 'long' } : { day: 'numeric', month: 'long', year: 'numeric' }).format(d);
}

/** The key of a message's day, for separators. */
export function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** The time shown in a list: 14:05 today, "Yesterday", a weekday, or 03/12. */
export function listTime(ms, now = Date.now()) {
  if (!ms) return '';
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86400000);
  if (days === 0) return clockTime(ms);
  if (days === 1) return t('date.yesterday');
  const d = new Date(ms);
  if (days > 1 && days < 7) return dateFormat({ weekday: 'short' }).format(d);
  return dateFormat({ day: '2-digit', month: '2-digit' }).format(d);
}

/** The first letter of a name (a whole emoji or CJK character, not half a surrogate). */
export function initial(name) {
  const first = Array.from(String(name || '?').trim())[0] || '?';
  return first.toUpperCase();
}

const HUES = [210, 262, 330, 14, 35, 152, 187, 290];

/**
 * An avatar: the uploaded picture when there is one, else the initial on a colour
 * chosen from the id. `online`: undefined (no dot), true or false.
 */
export function avatar(entity, { size = 'md', online, group = false } = {}) {
  const name = group ? entity?.name : entity?.nickname;
  const picture = localUrl(group ? entity?.icon : entity?.avatar);
  const hue = HUES[Math.abs(Number(entity?.id) || 0) % HUES.length];
  const el = h('span', {
    class: `avatar avatar-${size}${group ? ' avatar-group' : ''}`,
    'aria-hidden': 'true',
  });
  el.style.setProperty('--hue', String(hue));
  if (picture) {
    const img = h('img', { src: picture, alt: '', loading: 'lazy', decoding: 'async' });
    // A picture that fails to load falls back to the initial.
    img.addEventListener('error', () => { img.remove(); el.prepend(initial(name)); });
    el.append(img);
  } else {
    el.append(initial(name));
  }
  if (online !== undefined) {
    el.append(h('span', { class: `presence${online ? ' is-online' : ''}` }));
    el.dataset.online = online ? 'true' : 'false';
  }
  return el;
}

/** One line of text for a list preview. */
export function preview(message) {
  if (!message) return '';
  if (message.recalled) return t('message.recalled');
  if (message.media === 4) {
    return String(message.url || '').startsWith('/asset/') ? t('preview.sticker') : t('preview.photo');
  }
  if (message.media === 3) return t('preview.voice', { duration: duration(message.amount) });
  if (message.media === 5) return t('preview.file', { name: message.memo || t('file.default_name') });
  return String(message.content || '').replace(/\s+/g, ' ').trim();
}

/** Seconds as m:ss (a voice message's length, a player's position). */
export function duration(seconds) {
  const whole = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

/** A size in bytes for people: 980 B, 12.3 KB, 4.5 MB. */
export function fileSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1000) return `${n} B`;
  if (n < 1000 * 1000) return `${(n / 1000).toFixed(1)} KB`;
  return `${(n / 1000 / 1000).toFixed(1)} MB`;
}
