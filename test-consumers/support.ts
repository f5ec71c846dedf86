// What the consumer suite installs (pinned: a run installs the same thing every time) and the helpers
// its setup and tests share.
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const FIXTURES = join(REPO, 'test-consumers/fixtures');

/**
 * The peer versions a consumer may have: the newest release of each and the lowest of the ranges in
 * package.json's peerDependencies. Both sets are installed, type-checked and run on every runtime.
 */
export const PEERS = {
  newest: { hono: '4.13.19', 'drizzle-orm': '0.45.4', '@neondatabase/serverless': '1.2.0' },
  oldest: { hono: '4.12.0', 'drizzle-orm': '0.44.0', '@neondatabase/serverless': '1.0.0' },
} as const;
export type PeerSet = keyof typeof PEERS;

/** A Node app: node-postgres and its tooling. */
export const NODE_APP_EXTRAS = {
  pg: '8.23.1',
  '@types/pg': '8.23.1',
  '@types/node': '20.19.43',
  typescript: '5.9.3',
  'drizzle-kit': '0.31.11',
  // README "Using it" serves the app with it.
  '@hono/node-server': '2.1.9',
};

/** The app of `bare`: the peers every entry but `./neon` and `./durable-object` needs, and node-postgres; no Neon. */
export const BARE_APP = { hono: PEERS.newest.hono, 'drizzle-orm': PEERS.newest['drizzle-orm'], pg: NODE_APP_EXTRAS.pg };

/** Installed into the worker project after its size was taken: what its type-check needs. */
export const WORKER_APP_EXTRAS = { '@types/node': '20.19.43' };

/** The runtimes, from npm (their packages carry the binaries). */
export const RUNTIMES = { bun: '1.4.5', deno: '2.9.6', 'edge-runtime': '4.0.1' };

/** Supported by the repository's workerd (Miniflare 4.20260426); the same as wrangler.toml. */
export const COMPATIBILITY_DATE = '2026-04-01';

export interface Run {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command to its end (never throws for a non-zero exit: the caller asserts on it). */
export function run(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string },
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        cwd: options.cwd,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...options.env },
        timeout: options.timeoutMs ?? 180_000,
        maxBuffer: 64 * 1024 * 1024,
        killSignal: 'SIGKILL',
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ stdout: String(stdout), stderr: String(stderr) + (error && code === 1 && !stderr ? String(error) : ''), code });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

export async function mustRun(file: string, args: string[], options: Parameters<typeof run>[2]): Promise<string> {
  const r = await run(file, args, options);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} (in ${options.cwd}) exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `wrangler deploy --dry-run`: the Worker of `config` bundled by the repository's wrangler into `outdir`, as a deploy would. */
export async function wranglerBundle(cwd: string, config: string, outdir: string): Promise<void> {
  await mustRun(
    process.execPath,
    [join(REPO, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', outdir, '--config', config],
    { cwd, env: { WRANGLER_SEND_METRICS: 'false', CI: '1' } },
  );
}

/** `npm install` of exact versions into a project directory (no audit, no fund, no lockfile churn). */
export async function npmInstall(cwd: string, specs: string[]): Promise<void> {
  await mustRun('npm', ['install', '--no-audit', '--no-fund', '--save-exact', ...specs], { cwd, timeoutMs: 300_000 });
}

export function bytesIn(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) total += statSync(join(e.parentPath, e.name)).size;
  }
  return total;
}

/** Installed packages (every node_modules/<name> and node_modules/@scope/<name>, nested ones too). */
export function installedPackages(nodeModules: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      if (e.name.startsWith('@')) {
        for (const s of readdirSync(join(dir, e.name), { withFileTypes: true })) {
          if (s.isDirectory()) visit(join(dir, e.name, s.name), `${prefix}${e.name}/${s.name}`);
        }
      } else visit(join(dir, e.name), `${prefix}${e.name}`);
    }
  };
  const visit = (pkgDir: string, name: string) => {
    found.push(name);
    const nested = join(pkgDir, 'node_modules');
    try {
      if (statSync(nested).isDirectory()) walk(nested, `${name}>`);
    } catch {
      // no nested node_modules
    }
  };
  walk(nodeModules, '');
  return found.sort();
}

/** What a consumer's project holds: see global-setup.ts. */
export interface Projects {
  /** Scratch root (removed after the run unless KEEP_CONSUMERS=1). */
  root: string;
  tarball: string;
  /** The worker package's tarball (pg-edge-session-worker). */
  workerTarball: string;
  /** Edge app: the tarball + hono, drizzle-orm and Neon only. */
  edge: Record<PeerSet, string>;
  /** Node app: the tarball, the peers, node-postgres, typescript, drizzle-kit. */
  node: Record<PeerSet, string>;
  /** Node app without the optional Neon peer: the tarball, hono, drizzle-orm and pg only. */
  bare: string;
  /** A Node project that installs the two tarballs only (`npm install pg-edge-session-worker`), then @types/node. */
  worker: string;
  /** Its node_modules right after the two tarballs. */
  workerInstall: { packages: string[]; bytes: number };
  /** bun, deno, edge-runtime. */
  runtimes: string;
  /** The edge app's node_modules right after `npm install pg-edge-session hono drizzle-orm @neondatabase/serverless`. */
  edgeInstall: Record<PeerSet, { packages: string[]; bytes: number }>;
}
