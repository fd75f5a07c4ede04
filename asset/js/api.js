// The REST API (docs/api.md): fastIM's envelope {code, msg, data} with honest statuses;
// list replies carry {code, msg, rows, total} instead, as fastIM's did.
// The session token travels in the HttpOnly cookie set by /user/login, so scripts never
// see it.
import { errorText, t } from './i18n.js';

/** A refused or failed call: `status` is the HTTP status (0: the server was not reached).
 * `message` is for people, in the page's language; `serverMessage` is the server's own
 * (English) text, which names the field it is about. */
export class ApiError extends Error {
  constructor(status, message, serverMessage = message) {
    super(message);
    this.status = status;
    this.serverMessage = serverMessage;
  }
}

/** Called on any 401, e.g. to send the user back to the login page. */
let onUnauthorized = null;
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }


function unwrap(status, text) {
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: a proxy's error page */ }
  if (status >= 200 && status < 300 && body && body.code === 0) {
    // total_capped: only message search, whose count stops at a bound (docs/api.md).
    return Array.isArray(body.rows)
      ? { rows: body.rows, total: body.total, totalCapped: body.total_capped === true }
      : body.data;
  }
  if (status === 401 && onUnauthorized) onUnauthorized();
  const message = (body && typeof body.msg === 'string' && body.msg) || '';
  throw new ApiError(status, message ? errorText(message) : t('error.http_status', { status }), message);
}

/**
 * Call an endpoint. GET sends `values` in the query string; anything else as JSON.
 * Resolves to the envelope's `data` (for a list: `{rows, total}`); rejects with an ApiError.
 */
export async function api(path, values = {}, { method = 'POST' } = {}) {
  let url = path;
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method === 'GET') {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null) query.set(k, v);
    const qs = query.toString();
    if (qs) url += `?${qs}`;
  } else {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(values);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, t('error.unreachable'));
  }
  return unwrap(response.status, await response.text());
}

export const get = (path, values) => api(path, values, { method: 'GET' });

/**
 * Upload a file to /attach/upload (multipart field `file`; `kind`: image, voice or file).
 * XMLHttpRequest rather than fetch because only it reports upload progress.
 * `onProgress(fraction)` is called as the bytes leave. Returns {promise, abort}; the
 * promise resolves to the reply: an image's {url, thumb, width, height, bytes, type}, a
 * voice recording's {url, type, bytes, seconds, amount}, a file's {url, name, size, type}.
 */
export function upload(file, onProgress, kind = 'image') {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open('POST', '/attach/upload');
    xhr.responseType = 'text';
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      try { resolve(unwrap(xhr.status, xhr.responseText)); } catch (error) { reject(error); }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, t('error.unreachable'))));
    xhr.addEventListener('abort', () => reject(new ApiError(0, t('upload.cancelled'))));
    const form = new FormData();
    form.append('kind', kind);
    form.append('file', file, file.name || kind);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/**
 * Which of `fields` an error message is about: the server's 400/409 messages name the
 * field ("mobile must be a phone number…", "this mobile number is already registered").
 */
export function fieldOf(error, fields) {
  if (!(error instanceof ApiError) || ![400, 409, 413, 415].includes(error.status)) return null;
  const words = error.serverMessage.toLowerCase().split(/[^a-z]+/);
  return fields.find((f) => words.includes(f)) || null;
}

/** A name for this browser's session: logging in again replaces it, not piles up. */
export function deviceName() {
  const key = 'fastim.device';
  let name = null;
  try { name = localStorage.getItem(key); } catch { /* storage disabled */ }
  if (!name) {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    name = `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
    try { localStorage.setItem(key, name); } catch { /* fine: a new session each time */ }
  }
  return name;
}
