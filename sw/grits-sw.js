// grits service worker.
//
// This first version only installs, takes control and lets every request
// go to the network unchanged: the routes, the embedding and the update
// path are in place. Verified fetching from volunteers (BLAKE3, path
// proofs, peer choice) is the service worker issue's work.
/* global GRITS_CONFIG */
'use strict';

self.addEventListener('install', () => {
  // A new version replaces the old one at once instead of waiting for
  // every tab to close: no stuck old worker.
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});
