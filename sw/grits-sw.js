// grits' standalone service worker: the whole site's worker, for sites
// without one of their own. Everything it does is sw-lib.js (served at
// /grits/v1/sw-lib.js with the origin's settings written in); an app
// with its own worker imports the same module instead (sw-lib.d.ts).
import { handleFetch, handleMessage, prepare, settings } from '/grits/v1/sw-lib.js';

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

// A new version takes over at once: skipWaiting here, clients.claim on
// activation (register.js asks for update checks). What the first pages
// need (volunteers, root, the tree's directories) is fetched at install,
// where waiting delays no page; activation must be quick, since fetch
// events wait for it.
sw.addEventListener('install', (event) => {
  sw.skipWaiting();
  event.waitUntil(prepare());
});
sw.addEventListener('activate', (event) => event.waitUntil(Promise.all([
  sw.clients.claim(),
  setNavigationPreload(!settings().navigate),
])));
sw.addEventListener('fetch', (event) => { handleFetch(event); });
sw.addEventListener('message', (event) => { handleMessage(event); });

// Navigation preload (pages from the origin only): the browser sends a
// page's request while it starts this worker, instead of after.
async function setNavigationPreload(on) {
  const np = sw.registration.navigationPreload;
  if (!np) return;
  try {
    await (on ? np.enable() : np.disable());
  } catch (err) {
    console.debug('grits: navigation preload', err.message);
  }
}
