/**
 * Internals that the project's own tests reach in built code (a worker thread or a child process runs
 * dist/, never src/): `dist/src/internal.js`, beside the public entries and sharing their one chunk.
 * Not in package.json's `exports`, so not part of the API.
 */
export { acceleratedAccess } from './accel/accelerated-access.js';
export { simArenaPages } from './accel/sim-arena.js';
export { ConfigError, UsageError } from './errors.js';
export { acquireCoreLock, releaseCoreLock } from './kick/core-lock.js';
export { simRegionBytes } from './machine.js';
