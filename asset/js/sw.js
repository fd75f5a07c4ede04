// fastim's service worker (served at /sw.js, scope /): shows a Web Push as a
// notification while no page of fastim is open (the server pushes only to users with no
// open connection, docs/client.md), and a click on it opens the conversation.
// The push's body is JSON the server encrypted for this browser alone (RFC 8291):
// {title, body, cmd, dstid, id}; body is empty unless the server runs --push-preview.

// The page registers this worker as /sw.js?lang=<its language> (asset/js/notify.js), so
// that a push without a title is still shown in the page's language: the worker has no
// page, no cookie and no `<html lang>` to ask. A language switch reloads the page, which
// registers the worker again under the new URL: the browser installs that one.
const LANGUAGE = new URL(self.location.href).searchParams.get('lang') === 'zh-CN' ? 'zh-CN' : 'en';
// The language's table (asset/i18n/*.json, the page's own), kept in Cache Storage at
// install: a push may come when the server cannot be reached.
const TABLE_CACHE = 'fastim-i18n';
const TABLE_URL = `/asset/i18n/${LANGUAGE}.json`;
// Only if the table cannot be read at all (not cached, not fetched).
const LAST_RESORT_TITLE = 'New message';

self.addEventListener('install', (event) => event.waitUntil((async () => {
  try {
    const cache = await caches.open(TABLE_CACHE);
    await cache.add(TABLE_URL);
  } catch { /* offline now: the push handler fetches the table when it needs it */ }
  await self.skipWaiting();
})()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The text of `key` in the worker's language (the cached table, else the network). */
async function t(key, fallback) {
  try {
    const response = (await caches.match(TABLE_URL)) || (await fetch(TABLE_URL));
    const table = await response.json();
    return typeof table[key] === 'string' ? table[key] : fallback;
  } catch {
    return fallback;
  }
}

/** The page's route of a conversation (asset/js/app.js: #/u/ID, #/g/ID). */
function route(data) {
  const id = Number(data.dstid) || 0;
  return id ? `/chat#/${data.cmd === 11 ? 'g' : 'u'}/${id}` : '/chat';
}

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  // The server writes the title in the subscriber's language; without one (a push that
  // could not be read), the worker's language says "New message".
  const given = typeof data.title === 'string' && data.title ? data.title : null;
  // userVisibleOnly: every push shows a notification. One per conversation: a newer
  // push replaces the older (tag), and still alerts (renotify).
  event.waitUntil((async () => {
    const title = given || await t('push.title_fallback', LAST_RESORT_TITLE);
    await self.registration.showNotification(title, {
      body: typeof data.body === 'string' ? data.body : '',
      tag: `${data.cmd === 11 ? 'g' : 'u'}${data.dstid}`, // the page's own use the same
      renotify: true,
      icon: '/asset/img/logo.svg',
      data: { url: route(data) },
    });
  })());
});

// A click on a notification (a push's, or one the open page showed through this worker)
// brings up the conversation it is about. A fastim page already open gets the route by
// message and switches to it in place (its connection and loaded history stay), then is
// focused; `client.navigate` is not used: it reloads the page, and it rejects for a page
// this worker does not control (one opened before the worker was installed). With no
// page open, a new one opens on the conversation.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || '/chat', self.location.origin);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const open = windows.filter((client) => new URL(client.url).pathname === '/chat');
    if (!open.length) return self.clients.openWindow(url.href);
    // The one the user saw last first (matchAll lists the most recently focused first).
    const client = open.find((c) => c.focused) || open[0];
    client.postMessage({ type: 'fastim.open', route: url.hash });
    try {
      return await client.focus();
    } catch {
      return client; // a browser that refuses the focus: the page still switched
    }
  })());
});
