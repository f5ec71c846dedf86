/**
 * One run at a time of an async job, shared by the callers that ask while it runs (the touch flushes of
 * the manager, src/core/touches.ts, and of the sync host, src/host/touches.ts): a call while a run is under
 * way gets that run's promise; once it settled, the next call starts a new run.
 */
export function singleFlight<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    if (running === undefined) {
      running = run().finally(() => {
        running = undefined;
      });
    }
    return running;
  };
}
