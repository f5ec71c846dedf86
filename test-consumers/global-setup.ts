// `npm run test:consumers`, once per run: the database (DATABASE_URL, else embedded PostgreSQL) and the
// WebSocket proxy, then `npm pack` (its prepack builds dist/) and fresh scratch projects that install the
// tarball from the file and everything else from the registry, as a user's app does.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../harness/embedded-db.ts';
import { startWsProxy, type WsProxy } from '../harness/ws-proxy.ts';
import { snippet } from './readme.ts';
import {
  BARE_APP,
  bytesIn,
  COMPATIBILITY_DATE,
  FIXTURES,
  installedPackages,
  mustRun,
  NODE_APP_EXTRAS,
  npmInstall,
  PEERS,
  type PeerSet,
  type Projects,
  REPO,
  RUNTIMES,
  WORKER_APP_EXTRAS,
} from './support.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    wsProxyPort: number;
    projects: Projects;
  }
}

let embedded: EmbeddedDatabase | undefined;
let proxy: WsProxy | undefined;
let root: string | undefined;

function project(dir: string, name: string): string {
  const path = join(dir, name);
  cpSync(FIXTURES, path, { recursive: true });
  writeFileSync(join(path, 'package.json'), `${JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }, null, 2)}\n`);
  return path;
}

/**
 * README's Workers app and its wrangler.toml lines, as printed there ("Deploying on Cloudflare Workers +
 * Neon"): type-checked with the consumer Worker (worker/tsconfig.json), bundled for the size README quotes
 * (consumers.test.ts) and run in workerd (readme-snippets.test.ts).
 */
function readmeWorker(path: string) {
  writeFileSync(join(path, 'worker/readme.ts'), snippet('README.md', 'workers-app'));
  writeFileSync(
    join(path, 'worker/wrangler.readme.toml'),
    `# README's Workers app exactly as printed there (readme.ts), with README's wrangler.toml lines.\nname = "pg-edge-session-readme"\nmain = "readme.ts"\ncompatibility_date = "${COMPATIBILITY_DATE}"\n\n${snippet('README.md', 'workers-wrangler-toml')}`,
  );
}

const specs = (o: Record<string, string>) => Object.entries(o).map(([n, v]) => `${n}@${v}`);

export async function setup(p: TestProject) {
  const started = Date.now();
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres();
    url = embedded.url;
  }
  proxy = await startWsProxy();
  root = mkdtempSync(join(tmpdir(), 'pges-consumers-'));

  // What prepack runs, then the pack itself (its JSON report alone on stdout).
  await mustRun('npm', ['run', 'build'], { cwd: REPO });
  const pack = async (cwd: string) =>
    join(
      root as string,
      JSON.parse(await mustRun('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', root as string], { cwd }))[0].filename,
    );
  const tarball = await pack(REPO);
  const workerTarball = await pack(join(REPO, 'worker'));

  const sets = Object.keys(PEERS) as PeerSet[];
  const edge = {} as Record<PeerSet, string>;
  const node = {} as Record<PeerSet, string>;
  const edgeInstall = {} as Projects['edgeInstall'];
  const runtimes = project(root, 'runtimes');
  const worker = project(root, 'worker');
  const bare = project(root, 'bare');
  let workerInstall: Projects['workerInstall'] | undefined;
  await Promise.all([
    (async () => {
      // What `npm install pg-edge-session-worker` gives (the library's tarball beside it: both unpublished).
      await npmInstall(worker, [tarball, workerTarball]);
      const nm = join(worker, 'node_modules');
      workerInstall = { packages: installedPackages(nm), bytes: bytesIn(nm) };
      await npmInstall(worker, specs(WORKER_APP_EXTRAS));
    })(),
    npmInstall(runtimes, specs(RUNTIMES)),
    npmInstall(bare, [tarball, ...specs(BARE_APP)]),
    ...sets.map(async (set) => {
      // The edge app installs exactly what the README's install line says, nothing else.
      edge[set] = project(root as string, `edge-${set}`);
      readmeWorker(edge[set]);
      await npmInstall(edge[set], [tarball, ...specs(PEERS[set])]);
      const nm = join(edge[set], 'node_modules');
      edgeInstall[set] = { packages: installedPackages(nm), bytes: bytesIn(nm) };
    }),
    ...sets.map(async (set) => {
      node[set] = project(root as string, `node-${set}`);
      await npmInstall(node[set], [tarball, ...specs(PEERS[set]), ...specs(NODE_APP_EXTRAS)]);
    }),
  ]);
  const projects: Projects = {
    root,
    tarball,
    workerTarball,
    edge,
    node,
    bare,
    runtimes,
    edgeInstall,
    worker,
    workerInstall: workerInstall as Projects['workerInstall'],
  };
  p.provide('databaseUrl', url);
  p.provide('wsProxyPort', proxy.port);
  p.provide('projects', projects);
  console.log(
    `[consumers] packed and installed ${sets.length * 2 + 3} scratch projects in ${((Date.now() - started) / 1000).toFixed(1)} s (${root})`,
  );
}

export async function teardown() {
  await proxy?.close();
  await embedded?.stop();
  if (root && process.env.KEEP_CONSUMERS !== '1') rmSync(root, { recursive: true, force: true });
}
