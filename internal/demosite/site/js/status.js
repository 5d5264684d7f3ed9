'use strict';
// Shows whether the grits service worker controls this page.
(function () {
  var el = document.getElementById('sw');
  if (!el) return;
  if (!('serviceWorker' in navigator)) { el.textContent = 'not supported by this browser'; return; }
  el.textContent = navigator.serviceWorker.controller ? 'active' : 'not active yet (reload once)';
})();
