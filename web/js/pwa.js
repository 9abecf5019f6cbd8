// Installable web app: the service worker (web/sw.js) keeps the app shell so the page opens
// offline-first and can be installed (web/manifest.webmanifest). Registered after load, so
// it never competes with the first paint; browsers without it simply do without.

/** Registers /sw.js (scope: the whole app). */
export function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  const register = () => navigator.serviceWorker.register('/sw.js').catch((err) => console.warn('service worker not registered', err));
  if (document.readyState === 'complete') register();
  else globalThis.addEventListener('load', register, { once: true });
}
