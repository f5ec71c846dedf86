// A Worker for test/system/bundle-init.test.ts importing pg-edge-session/host alone (its neonHostDb keeps the dynamic
// import of Neon's driver in the bundle): it starts, and builds a host's statement names.
import { neonHostDb, objectNames } from 'pg-edge-session/host';

export default {
  fetch: () => Response.json({ neonHostDb: typeof neonHostDb, audit: objectNames('bundle_init', '').audit }),
};
