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
  // The worker may load a page it served from its copy of the site again
  // once it learns of a newer version (a moment after the page came):
  // it asks here first, and a page someone has begun to use (a key
  // pressed or a click since this script ran, or a form field that no
  // longer holds its default, typed before or filled in by the browser)
  // is left as it is: what was typed would be lost. The next navigation
  // brings the new version.
  var touched = false;
  ['keydown', 'input', 'change', 'pointerdown'].forEach(function (t) {
    addEventListener(t, function () { touched = true; }, { capture: true, passive: true });
  });
  function edited() {
    var fields = document.querySelectorAll('input, textarea, select');
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.tagName === 'SELECT') {
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].selected !== f.options[j].defaultSelected) return true;
        }
      } else if (f.type === 'checkbox' || f.type === 'radio') {
        if (f.checked !== f.defaultChecked) return true;
      } else if (f.type !== 'hidden' && f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }
  navigator.serviceWorker.addEventListener('message', function (e) {
    if (!e.data || e.data.type !== 'grits-newer-root') return;
    var keep = touched || edited();
    var port = e.ports && e.ports[0];
    if (port) port.postMessage({ reload: !keep });
    if (!keep) location.reload();
  });
  navigator.serviceWorker.startMessages();
  navigator.serviceWorker
    .register('/grits-sw.js', { scope: '__GRITS_SCOPE__', type: 'module', updateViaCache: 'none' })
    .then(function (reg) {
      check(reg);
      setInterval(function () { check(reg); }, CHECK_MS);
    })
    .catch(function (err) { console.warn('grits: service worker not registered:', err); });
})();
