// Tertulia's service worker: serves the app shell (the page, its styles, modules and
// icons) so the installed app opens at once and offline, and takes fresh copies from the
// network whenever it is there (network first, so a new version is never hidden behind an
// old cache). The API, the WebSocket and everything else go straight to the network.

/** Bump to drop every cached copy of an older shell. */
const CACHE = 'tertulia-shell-v1';

/** The app shell. */
const SHELL = [
  '/',
  '/index.html',
  '/check.html',
  '/css/app.css',
  '/manifest.webmanifest',
  '/img/icon.svg',
  '/img/icon-192.png',
  '/img/icon-512.png',
  '/js/api.js',
  '/js/app.js',
  '/js/call.js',
  '/js/calls.js',
  '/js/chat.js',
  '/js/check.js',
  '/js/client.js',
  '/js/dom.js',
  '/js/errors.js',
  '/js/i18n.js',
  '/js/icons.js',
  '/js/levels.js',
  '/js/notify.js',
  '/js/pwa.js',
  '/js/sound.js',
];

self.addEventListener('install', (event) => {
  // A missing file must not block installing: cache what is there.
  event.waitUntil(
    caches.open(CACHE).then((cache) => Promise.all(SHELL.map((url) => cache.add(url).catch(() => {})))).then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()),
  );
});

/** Whether a request is for the shell (same origin, GET, not the API or the socket). */
function isShell(request) {
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return false;
  return !/^\/(api|ws|sse|metrics|healthz|readyz)(\/|$)/.test(url.pathname);
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (!isShell(request)) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && response.type === 'basic') {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy)).catch(() => {});
        }
        return response;
      })
      .catch(async () => (await caches.match(request)) || (request.mode === 'navigate' ? caches.match('/index.html') : Response.error())),
  );
});

// A click on a notification shown by the worker brings the app's tab forward.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((list) => {
      const open = list.find((c) => 'focus' in c);
      return open ? open.focus() : self.clients.openWindow('/');
    }),
  );
});
