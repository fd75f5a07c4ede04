// fastim's service worker (served at /sw.js, scope /): shows a Web Push as a
// notification while no page of fastim is open (the server pushes only to users with no
// open connection, docs/client.md), and a click on it opens the conversation.
// The push's body is JSON the server encrypted for this browser alone (RFC 8291):
// {title, body, cmd, dstid, id}; body is empty unless the server runs --push-preview.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The page's route of a conversation (asset/js/app.js: #/u/ID, #/g/ID). */
function route(data) {
  const id = Number(data.dstid) || 0;
  return id ? `/chat#/${data.cmd === 11 ? 'g' : 'u'}/${id}` : '/chat';
}

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const title = typeof data.title === 'string' && data.title ? data.title : 'New message';
  // userVisibleOnly: every push shows a notification. One per conversation: a newer
  // push replaces the older (tag), and still alerts (renotify).
  event.waitUntil(self.registration.showNotification(title, {
    body: typeof data.body === 'string' ? data.body : '',
    tag: `${data.cmd === 11 ? 'g' : 'u'}${data.dstid}`, // the page's own use the same
    renotify: true,
    icon: '/asset/img/logo.svg',
    data: { url: route(data) },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || '/chat', self.location.origin).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of windows) {
      if (new URL(client.url).pathname === '/chat') {
        await client.focus();
        try { return await client.navigate(url); } catch { return client; }
      }
    }
    return self.clients.openWindow(url);
  })());
});
