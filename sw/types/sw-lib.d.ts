// Types of grits' service worker library, for an app's own worker written
// in TypeScript. The origin serves the module at /grits/v1/sw-lib.js (its
// settings written in) and this file at /grits/v1/sw-lib.d.ts; copy this
// file into the app's sources and import the module by its URL:
//
//   import { handleFetch } from '/grits/v1/sw-lib.js';
//   self.addEventListener('fetch', (event) => {
//     if (handleFetch(event)) return; // grits answers
//     // ... the app's own handling
//   });
//
// The bundler must leave the import as it is (an external module): the
// browser loads it from the origin, which keeps it in step with gritsd.
// sw/types/api-check.js holds these declarations equal to the module.

/// <reference lib="WebWorker" />

declare module '*/grits/v1/sw-lib.js' {
  /** The worker's settings: the origin's sw_* settings unless narrowed. */
  export interface Settings {
    /** URL path prefixes served from volunteers (sw_paths; by default the tree's top-level names, empty before the first root). */
    paths: string[];
    /** Pages (navigations) from the worker's cache and volunteers too (sw_navigate: a static site's default; false behind an app, whose pages come from the origin). */
    navigate: boolean;
    /** Bytes of verified blocks kept in Cache Storage (sw_cache_mb). */
    cacheBytes: number;
    /** How long an open page may read an old root (sw_root_check), ms. */
    rootCheckMs: number;
  }

  /**
   * Answers the event when grits should (a GET or HEAD of the site under
   * the configured paths): calls event.respondWith and
   * event.stopImmediatePropagation, and returns true. Returns false, and
   * leaves the event alone, for everything else.
   */
  export function handleFetch(event: FetchEvent): boolean;

  /**
   * Answers grits' own messages ({type: 'grits-stats'} and
   * {type: 'grits-reset-stats'}) and returns true; false for any other.
   */
  export function handleMessage(event: ExtendableMessageEvent): boolean;

  /**
   * Loads what the first pages need (the volunteer list, the root, the
   * tree's directory nodes) and opens connections to volunteers; give it
   * to the install event's waitUntil (work in activate would hold back
   * every fetch event). Never rejects.
   */
  export function prepare(): Promise<void>;

  /**
   * Narrows the origin's settings for this worker. Call it at the top
   * level of the worker, before any event. Throws a TypeError on an
   * unknown key or a value out of range.
   */
  export function configure(opts: Partial<Settings>): void;

  /** The settings in force, and the worker's version. */
  export function settings(): Settings & { version: string };
}
