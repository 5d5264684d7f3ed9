// GRITS_CONFIG is written by the origin at the top of sw-lib.js
// (sw.Scripts in sw.go: the config struct, as JSON).
declare const GRITS_CONFIG: {
  siteKey: string;
  scope: string;
  paths: string[];
  navigate: boolean;
  cacheBytes: number;
  rootCheckMs: number;
  hosts?: { origin: string; prefix: string }[];
  /** inject_sw_tree: the tag inserted into the HTML pages served from the tree. */
  inject?: string;
  version?: string;
};
