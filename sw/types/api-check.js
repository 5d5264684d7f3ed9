// Holds sw-lib.d.ts (what an integrator's TypeScript sees) equal to
// sw-lib.js (what runs, typed from its JSDoc): each must be assignable to
// the other, under tsc --checkJs with strict function types.
import * as impl from '../sw-lib.js';

/** @type {typeof import('/grits/v1/sw-lib.js')} */
export const declared = impl;

/** @type {typeof impl} */
export const implemented = /** @type {typeof import('/grits/v1/sw-lib.js')} */ (declared);
