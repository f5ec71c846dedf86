// The harness's child processes (harness/processes.ts), as chaos/ uses them: a restarted worker writes into
// the log array of the one before it, and waitForLine must wait for the new process's own line. It took the
// earlier process's "listener ready" for the new one's, so a restart that failed its start-up check was
// judged an exit after start (a crash) in the chaos run.
import { describe, expect, it } from 'vitest';
import { spawnChild } from '../../harness/processes.ts';

describe('harness processes', () => {
  it("waitForLine waits for the process's own line, not one an earlier process left in a shared log", async () => {
    const shared: string[] = [];
    const first = spawnChild(process.execPath, ['-e', 'console.log("ready")'], { lines: shared, keep: 100 });
    await first.waitForLine(/ready/);
    await first.finished;
    const second = spawnChild(process.execPath, ['-e', 'console.log("starting"); process.exit(1)'], { lines: shared, keep: 100 });
    await expect(second.waitForLine(/ready/, 10_000)).rejects.toThrow(/exited/);
    expect(shared).toEqual(['ready', 'starting']);
  });
});
