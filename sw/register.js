// Registers the grits service worker for this site. Include it with
// <script src="/grits/v1/register.js" defer></script>.
'use strict';
(function () {
  if (!('serviceWorker' in navigator)) return;
  // How often a page asks the browser to look for a new worker. Browsers
  // check on navigations, but a long-lived page (or one restored from
  // the back/forward cache) may keep an old worker for a long time; the
  // new one activates at once (skipWaiting, clients.claim).
  var CHECK_MS = 5 * 60 * 1000;
  function check(reg) {
    try {
      var last = Number(localStorage.getItem('grits-sw-checked')) || 0;
      if (Date.now() - last < CHECK_MS) return;
      localStorage.setItem('grits-sw-checked', String(Date.now()));
    } catch (e) {
      // no storage: check anyway, at most once per page and interval
    }
    if (reg.active) reg.update().catch(function () {});
  }
  navigator.serviceWorker
    .register('/grits-sw.js', { scope: '__GRITS_SCOPE__', type: 'module', updateViaCache: 'none' })
    .then(function (reg) {
      check(reg);
      setInterval(function () { check(reg); }, CHECK_MS);
    })
    .catch(function (err) { console.warn('grits: service worker not registered:', err); });
})();
