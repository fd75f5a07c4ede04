// Sticker packs (issue 7): `GET /sticker/packs` lists them as {rows: [{id, name, icon,
// assets: [{url, title}]}]}, read from each pack's fastIM-style info.json under
// /asset/stickers/. Without that endpoint, a static /asset/stickers/index.json naming the
// packs will do. The reading is lenient about shapes (asset entries as file names
// relative to the pack or as objects) and checks every URL with `localUrl` before use.
// Names and titles come in the page's language when the pack has them: `names` and
// `titles` per language in the endpoint's rows, `i18n.<lang>` in a manifest read directly.
import { localUrl } from './dom.js';
import { currentLanguage } from './i18n.js';

const ROOT = '/asset/stickers/';
let loading = null;

async function json(url) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function resolve(base, value) {
  if (typeof value !== 'string' || !value) return '';
  return localUrl(value.startsWith('/') ? value : base + value);
}

function asset(base, entry, titles, localTitles) {
  let url = '';
  let title = '';
  if (typeof entry === 'string') {
    url = resolve(base, entry);
    title = localTitles?.[entry] || titles?.[entry];
  } else if (entry && typeof entry === 'object') {
    url = resolve(base, entry.url || entry.path || entry.file || entry.src || entry.name);
    title = entry.titles?.[currentLanguage()] || entry.title;
  }
  if (!url) return null;
  return { url, title: String(title || url.split('/').pop().replace(/\.[a-z0-9]+$/i, '')) };
}

/** A pack as the client uses it, or null when it has no usable sticker. */
function pack(base, info, fallbackId) {
  const id = String(info.id || fallbackId || base);
  const local = info.i18n?.[currentLanguage()] || {}; // a manifest read directly
  const list = Array.isArray(info.assets) ? info.assets : Array.isArray(info.stickers) ? info.stickers : [];
  const assets = list.map((a) => asset(base, a, info.titles, local.titles)).filter(Boolean);
  if (!assets.length) return null;
  const name = info.names?.[currentLanguage()] || local.name || info.name || id;
  return { id, name: String(name), icon: resolve(base, info.icon) || assets[0].url, assets };
}

async function loadPack(entry) {
  const id = typeof entry === 'string' ? entry : entry && (entry.id || entry.dir || entry.name);
  let infoUrl = entry && typeof entry === 'object' && (entry.info || entry.manifest);
  if (!infoUrl && !id) return null;
  infoUrl = infoUrl ? resolve(ROOT, infoUrl) : localUrl(`${ROOT}${id}/info.json`);
  if (!infoUrl) return null;
  const info = await json(infoUrl);
  return pack(infoUrl.slice(0, infoUrl.lastIndexOf('/') + 1), info, id);
}

/** The packs, loaded once: [{id, name, icon, assets: [{url, title}…]}] (empty when none). */
export function loadStickerPacks() {
  if (!loading) {
    loading = (async () => {
      try {
        const listed = await json('/sticker/packs');
        const rows = (listed && Array.isArray(listed.rows) && listed.rows) || [];
        return rows.map((row) => pack(`${ROOT}${row.id}/`, row, row.id)).filter(Boolean);
      } catch { /* no such endpoint: try the static index */ }
      let index;
      try { index = await json(`${ROOT}index.json`); } catch { return []; }
      const entries = Array.isArray(index) ? index : (index && (index.packs || index.rows)) || [];
      const packs = await Promise.all(entries.map((e) => loadPack(e).catch(() => null)));
      return packs.filter(Boolean);
    })();
  }
  return loading;
}

/** Is this message's image a sticker (a pack file) rather than an uploaded photo? */
export function isSticker(url) {
  return typeof url === 'string' && url.startsWith('/asset/');
}
