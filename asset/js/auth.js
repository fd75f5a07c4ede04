// The login and register pages: check the fields in the browser first, then show the
// server's answer next to the field it is about (or above the button).
import { api, ApiError, deviceName, fieldOf } from './api.js';
import { setupLanguageSwitch, t } from './i18n.js';
import { looksLikePhone } from './phone.js';

const RULES = {
  mobile: (v) => (looksLikePhone(v) ? '' : t('auth.mobile_invalid')),
  passwd: (v) => (v.length < 8 ? t('auth.password_short')
    : v.length > 128 ? t('auth.password_long') : ''),
  nickname: (v) => (!v.trim() ? t('auth.nickname_empty')
    : Array.from(v.trim()).length > 32 ? t('auth.nickname_long') : ''),
};

function fieldError(form, name) {
  return form.querySelector(`[data-error-for="${name}"]`);
}

function setError(form, name, message) {
  const target = name ? fieldError(form, name) : form.querySelector('[data-error-for="form"]');
  if (!target) return;
  target.textContent = message;
  target.hidden = !message;
  if (name) {
    const input = form.elements.namedItem(name);
    if (input) input.setAttribute('aria-invalid', message ? 'true' : 'false');
  }
}

function clearErrors(form) {
  for (const el of form.querySelectorAll('[data-error-for]')) {
    el.textContent = '';
    el.hidden = true;
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.setAttribute('aria-invalid', 'false');
}

function values(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) out[k] = typeof v === 'string' ? v : '';
  if (out.mobile !== undefined) out.mobile = out.mobile.trim();
  if (out.nickname !== undefined) out.nickname = out.nickname.trim();
  return out;
}

function validate(form, data) {
  let first = null;
  for (const name of Object.keys(data)) {
    const rule = RULES[name];
    const message = rule ? rule(data[name]) : '';
    if (message) {
      setError(form, name, message);
      first = first || name;
    }
  }
  if (first) form.elements.namedItem(first).focus();
  return !first;
}

async function login(data) {
  await api('/user/login', { mobile: data.mobile, passwd: data.passwd, device: deviceName() });
  // Back to the invite link that sent us here (only that: never another site).
  const next = new URLSearchParams(location.search).get('next') || '';
  location.assign(/^\/join\/[A-Za-z0-9_-]{1,64}$/.test(next) ? next : '/chat');
}

function setBusy(form, busy, label) {
  const button = form.querySelector('button[type=submit]');
  button.disabled = busy;
  button.setAttribute('aria-busy', busy ? 'true' : 'false');
  if (label) button.textContent = label;
}

function setup(form) {
  const mode = form.id; // "login" or "register"
  const idleLabel = form.querySelector('button[type=submit]').textContent;
  // A field's error goes away as soon as it is edited.
  form.addEventListener('input', (event) => {
    if (event.target.name) setError(form, event.target.name, '');
    setError(form, null, '');
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const data = values(form);
    if (!validate(form, data)) return;
    setBusy(form, true, mode === 'login' ? t('auth.logging_in') : t('auth.registering'));
    try {
      if (mode === 'register') await api('/user/register', data);
      await login(data);
    } catch (error) {
      const field = fieldOf(error, Object.keys(data));
      const message = error instanceof ApiError ? error.message : String(error);
      setError(form, field, capitalise(message));
      if (field) form.elements.namedItem(field).focus();
      setBusy(form, false, idleLabel);
    }
  });
}

const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);

for (const form of document.querySelectorAll('form[data-auth]')) setup(form);
setupLanguageSwitch();
