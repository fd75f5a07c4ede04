// Sticker packs (issue 7): an index of packs under /asset/stickers/, and per pack an
// info.json in fastIM's shape {id, name, icon, assets}. The reading is lenient about the
// index's shape (a list, or {packs: […]}; entries as names or objects) and about asset
// entries (file names relative to the pack, or absolute /asset/ paths), and checks
// every URL with `localUrl` before it is used.
import { localUrl } from './dom.js';

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

function assetUrl(base, entry) {
  if (typeof entry === 'string') return resolve(base, entry);
  if (entry && typeof entry === 'object') {
    return resolve(base, entry.url || entry.path || entry.file || entry.src || entry.name);
  }
  return '';
}

async function loadPack(entry) {
  let id = typeof entry === 'string' ? entry : entry && (entry.id || entry.dir || entry.name);
  let infoUrl = entry && typeof entry === 'object' && (entry.info || entry.manifest);
  if (!infoUrl && !id) return null;
  infoUrl = infoUrl ? resolve(ROOT, infoUrl) : localUrl(`${ROOT}${id}/info.json`);
  if (!infoUrl) return null;
  const info = await json(infoUrl);
  const base = infoUrl.slice(0, infoUrl.lastIndexOf('/') + 1);
  id = String(info.id || id || base);
  const assets = (Array.isArray(info.assets) ? info.assets : Array.isArray(info.stickers) ? info.stickers : [])
    .map((a) => assetUrl(base, a)).filter(Boolean);
  if (!assets.length) return null;
  return {
    id,
    name: String(info.name || id),
    icon: resolve(base, info.icon) || assets[0],
    assets,
  };
}

/** The packs, loaded once: [{id, name, icon, assets: [url…]}] (empty when none). */
export function loadStickerPacks() {
  if (!loading) {
    loading = (async () => {
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
