// The client's languages (docs/client.md, "Languages"): English and 简体中文, one table
// each in asset/i18n/*.json, the same files the server renders its pages from
// (fastim/i18n.py). `t(key, params)` is synchronous: this module loads the table before
// any module that imports it runs (top-level await).
//
// The language: the user's choice (the switch on the login, register and profile pages,
// kept in localStorage and in the `fastim_lang` cookie the server reads), else the first
// of the browser's languages we have, else English. `<html lang>` is set to match, so that
// screen readers speak the text in its language and fonts pick the right glyphs.

export const LANGUAGES = ['en', 'zh-CN'];
const STORAGE_KEY = 'fastim.lang';
const COOKIE = 'fastim_lang';
const ONE_YEAR = 365 * 24 * 3600;

/** The language we ship for a BCP 47 tag, or null (every zh is 简体中文, every en English). */
export function matchLanguage(tag) {
  const primary = String(tag || '').toLowerCase().split('-')[0];
  if (primary === 'zh') return 'zh-CN';
  if (primary === 'en') return 'en';
  return null;
}

function cookieLanguage() {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith(`${COOKIE}=`));
  const value = cookie ? decodeURIComponent(cookie.slice(COOKIE.length + 1)) : null;
  return LANGUAGES.includes(value) ? value : null;
}

function rememberInCookie(lang) {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `${COOKIE}=${encodeURIComponent(lang)}; Path=/; Max-Age=${ONE_YEAR}; SameSite=Lax${secure}`;
}

function remembered() {
  let stored = null;
  try { stored = localStorage.getItem(STORAGE_KEY); } catch { /* storage disabled */ }
  if (LANGUAGES.includes(stored)) {
    // The cookie expired or was cleared: put it back, so the server's next page agrees.
    if (cookieLanguage() !== stored) rememberInCookie(stored);
    return stored;
  }
  return cookieLanguage();
}

function fromBrowser() {
  for (const tag of navigator.languages || [navigator.language]) {
    const language = matchLanguage(tag);
    if (language) return language;
  }
  return null;
}

const language = remembered() || fromBrowser() || 'en';

async function loadTable(lang) {
  try {
    const response = await fetch(new URL(`../i18n/${lang}.json`, import.meta.url));
    if (response.ok) return await response.json();
  } catch { /* offline with nothing cached: keys show, which a test would catch */ }
  return {};
}

// English too when another language is shown: the server's error messages are English and
// are recognised by the English table's `error.*` patterns (see `errorText`).
const [table, english] = await Promise.all([
  loadTable(language), language === 'en' ? null : loadTable('en')]);
const englishTable = english || table;
document.documentElement.lang = language;

/** "en" or "zh-CN". */
export function currentLanguage() {
  return language;
}

const PLACEHOLDER = /\{([a-z_][a-z0-9_]*)\}/g;

function fill(template, params) {
  return template.replace(PLACEHOLDER, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** The string for `key` in the current language, `{name}` placeholders filled from
 * `params`. A missing key shows as itself (and fails tests/web/test_i18n_keys.py). */
export function t(key, params = {}) {
  const template = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : null;
  if (template === null) {
    console.warn(`i18n: no "${key}" in ${language}`);
    return key;
  }
  return fill(template, params);
}

/** `t(key_one)` for one, `t(key)` for any other count (English needs both; Chinese has
 * no plural and says the same in both). `count` is a parameter of both. */
export function tn(key, count, params = {}) {
  return t(count === 1 ? `${key}_one` : key, { ...params, count });
}

/** Remember `lang` (cookie for the server, localStorage for the scripts) and reload the
 * page in it: every string on it, server-rendered ones included, changes at once. */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) return;
  try { localStorage.setItem(STORAGE_KEY, lang); } catch { /* the cookie still remembers */ }
  rememberInCookie(lang);
  location.reload();
}

/** Every `<select data-lang-switch>` on the page switches the language. */
export function setupLanguageSwitch(root = document) {
  for (const select of root.querySelectorAll('select[data-lang-switch]')) {
    select.value = language;
    select.addEventListener('change', () => setLanguage(select.value));
  }
}

// -- the server's error messages ---------------------------------------------------------
// The API's `msg` is English (a stable text for developers and logs; WebSocket errors
// carry a code too). The ones a user may meet have an `error.*` key: its English text
// is the server's message with {placeholders}, so that a message is recognised and said
// again in the current language with the same values. Field names in them ({field})
// are translated through `field.*`.

let patterns = null;

function errorPatterns() {
  if (patterns) return patterns;
  patterns = [];
  for (const [key, template] of Object.entries(englishTable)) {
    if (!key.startsWith('error.')) continue;
    const names = [];
    const source = template.split(PLACEHOLDER).map((part, i) => {
      if (i % 2 === 1) { names.push(part); return '(.+?)'; }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }).join('');
    patterns.push({ key, names, regex: new RegExp(`^${source}\\.?$`, 'i') });
  }
  return patterns;
}

/** A server error message for people, in the current language: its `error.*` entry when
 * it has one, else the text of `chat_error.<code>` for a WebSocket error code, else the
 * server's own words. */
export function errorText(message, code = '') {
  const text = String(message || '');
  // The server's messages are a line; a longer one (quoting something long) is shown as
  // it is rather than run through patterns with several lazy groups.
  for (const { key, names, regex } of text.length <= 300 ? errorPatterns() : []) {
    const found = regex.exec(text);
    if (!found) continue;
    const params = {};
    names.forEach((name, i) => {
      const value = found[i + 1];
      params[name] = name === 'field' && `field.${value}` in table ? table[`field.${value}`] : value;
    });
    return t(key, params);
  }
  if (code && `chat_error.${code}` in table) return t(`chat_error.${code}`);
  return text;
}

// -- dates and times, in the language's own way (Intl.DateTimeFormat) -----------------------

const formats = new Map();

/** `Intl.DateTimeFormat` in the current language with `options` (made once). Hours run
 * 0-23 in both languages, as messengers show them. */
export function dateFormat(options) {
  const id = JSON.stringify(options);
  if (!formats.has(id)) formats.set(id, new Intl.DateTimeFormat(language, options));
  return formats.get(id);
}

/** 14:05 */
export function formatClock(ms) {
  return dateFormat({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms);
}

/** A full date and time, for a title: 6 December 2026, 14:05 / 2026年12月6日 14:05. */
export function formatDateTime(ms) {
  return dateFormat({ dateStyle: 'long', timeStyle: 'short', hourCycle: 'h23' }).format(ms);
}
