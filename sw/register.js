// Registers the grits service worker for this site. Include it with
// <script src="/grits/v1/register.js" defer></script>.
'use strict';
(function () {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker
    .register('/grits-sw.js', { scope: '__GRITS_SCOPE__', type: 'module', updateViaCache: 'none' })
    .catch(function (err) { console.warn('grits: service worker not registered:', err); });
})();
