// Data directories of the embedded PostgreSQL, made where the server's user can enter them: a fresh
// temporary one (os.tmpdir(), else /tmp), or the requested one, which as root, when `movable`, is kept
// under /var/lib/pg-edge-session/<hash of the requested path> if that user cannot enter it.
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { canEnter, EmbeddedDbError, errText, FIX, type RunAs, secureDir } from './common.ts';

const MOVED_DATA = '/var/lib/pg-edge-session';

/** A fresh private directory owned by the server's user, where that user can enter it. */
export async function tempDir(prefix: string, runAs: RunAs): Promise<string> {
  const bases = [...new Set([tmpdir(), '/tmp'])];
  const failures: string[] = [];
  for (const base of runAs.uid === undefined ? bases.slice(0, 1) : bases) {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(base, prefix));
      if (runAs.uid === undefined) return dir;
      chownSync(dir, runAs.uid, runAs.gid as number);
      if (await canEnter(dir, runAs)) return dir;
      failures.push(`${base}: not reachable`);
    } catch (e) {
      failures.push(`${base}: ${errText(e)}`);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  throw new EmbeddedDbError(
    `no temporary directory for PostgreSQL (running as ${runAs.name}): ${failures.join('; ')}: set TMPDIR to a directory every user can enter (e.g. /tmp), ${FIX}`,
  );
}

/** The requested data directory, or (`movable`) its stand-in under /var/lib/pg-edge-session. */
export async function dataDir(requested: string, runAs: RunAs, options: { persistent?: boolean; movable?: boolean }): Promise<string> {
  const dir = await ownDataDir(requested, runAs, options.persistent ?? false);
  if (dir !== undefined) return dir;
  const reason = `user '${runAs.name}' (PostgreSQL cannot run as root) cannot enter ${requested} (a parent directory is private)`;
  if (!options.movable) throw new EmbeddedDbError(`${reason}: choose a data directory outside it (npm start: DATA_DIR), ${FIX}`);
  const moved = join(MOVED_DATA, createHash('sha256').update(requested).digest('hex').slice(0, 16));
  try {
    secureDir(MOVED_DATA);
  } catch (e) {
    throw new EmbeddedDbError(
      `${reason}, and ${MOVED_DATA} cannot hold the data instead (${errText(e)}): set DATA_DIR to a directory outside it, ${FIX}`,
      {
        cause: e,
      },
    );
  }
  const dirThere = await ownDataDir(moved, runAs, options.persistent ?? false);
  if (dirThere !== undefined) return dirThere;
  throw new EmbeddedDbError(`${reason}, nor ${moved}: set DATA_DIR to a directory every user can enter, ${FIX}`);
}

/**
 * Makes `dir` ready for initdb (absent or empty) or for a restart (holds PG_VERSION): created if needed,
 * owned by the server's user. `undefined` when that user cannot enter it.
 */
async function ownDataDir(dir: string, runAs: RunAs, persistent: boolean): Promise<string | undefined> {
  let cluster = existsSync(join(dir, 'PG_VERSION'));
  if (cluster && !persistent) {
    rmSync(dir, { recursive: true, force: true });
    cluster = false;
  }
  let created = false;
  try {
    if (!existsSync(dir)) {
      // The parents get the umask's mode (a recursive mkdir would give them 700 too).
      mkdirSync(dirname(dir), { recursive: true });
      mkdirSync(dir, { mode: 0o700 });
      created = true;
    } else if (!cluster && readdirSync(dir).length > 0) {
      throw new EmbeddedDbError(
        `${dir} is not empty and holds no PostgreSQL data (no PG_VERSION): choose an empty or new directory, ${FIX}`,
      );
    }
    if (runAs.uid === undefined) return dir;
    const st = statSync(dir);
    if (cluster && st.uid !== runAs.uid) {
      throw new EmbeddedDbError(
        `${dir} belongs to uid ${st.uid}, but PostgreSQL runs as ${runAs.name} (uid ${runAs.uid}): chown -R ${runAs.name}: ${dir}, or remove it`,
      );
    }
    if (!cluster) {
      chownSync(dir, runAs.uid, runAs.gid as number);
      chmodSync(dir, 0o700);
    }
  } catch (e) {
    if (e instanceof EmbeddedDbError) throw e;
    throw new EmbeddedDbError(`cannot create the data directory ${dir} (${errText(e)}): choose another one (npm start: DATA_DIR), ${FIX}`, {
      cause: e,
    });
  }
  if (await canEnter(dir, runAs)) return dir;
  if (created) rmdirSync(dir);
  return undefined;
}
