// Inline errors and confirmations for the small forms of the chat page.
import { ApiError, fieldOf } from '../api.js';

export function showFieldError(form, name, message) {
  const target = form.querySelector(`[data-error-for="${name}"]`) || form.querySelector('[data-error-for="form"]');
  if (!target) return;
  target.textContent = message;
  target.hidden = !message;
  const input = form.elements.namedItem(name);
  if (input && input.setAttribute) input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

/** A short confirmation under the form; it goes away by itself after a while. */
export function showOk(form, message) {
  const ok = form.querySelector('[data-ok]');
  if (!ok) return;
  ok.textContent = message;
  ok.hidden = !message;
  clearTimeout(ok.hideTimer);
  if (message) ok.hideTimer = setTimeout(() => { ok.hidden = true; }, 8000);
}

export function clearForm(form) {
  for (const el of form.querySelectorAll('[data-error-for], [data-ok]')) {
    el.textContent = '';
    el.hidden = true;
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.setAttribute('aria-invalid', 'false');
}

/** Show an API error next to the field it names, or under `fallback`. */
export function showApiError(form, error, fields, fallback) {
  const field = fieldOf(error, fields) || fallback;
  const message = error instanceof ApiError ? error.message : String(error);
  showFieldError(form, field, message.charAt(0).toUpperCase() + message.slice(1));
}

/** Run `action` with the form's submit button disabled. */
export async function busy(form, action) {
  const button = form.querySelector('button[type=submit]');
  if (button) button.disabled = true;
  try {
    return await action();
  } finally {
    if (button) button.disabled = false;
  }
}

/** Clear an input's error as soon as it is edited. */
export function clearOnInput(form) {
  form.addEventListener('input', (event) => {
    if (event.target.name) showFieldError(form, event.target.name, '');
    showOk(form, '');
  });
}
