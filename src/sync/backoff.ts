/**
 * Reconnect delays, one rule for every long-lived connection (the worker's LISTEN connection, the sync
 * client's push stream): capped exponential backoff with "equal jitter". Attempt n (0 = the first retry)
 * has the cap `min(max, base · 2^n)`; the delay is half that cap plus a uniformly random share of the other
 * half, so a crowd that lost its connection together spreads out, yet nobody comes back faster than half
 * the cap. The caller resets `attempt` to 0 once a connection works again.
 */
export interface BackoffOptions {
  /** Cap of the first retry, in ms. Default 100. */
  base?: number;
  /** Largest delay, in ms. */
  max: number;
  /** Uniform in [0, 1): Math.random by default (tests pass their own). */
  random?: () => number;
}

export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const base = o.base ?? 100;
  const cap = Math.min(o.max, base * 2 ** Math.min(Math.max(0, attempt), 30));
  return cap / 2 + (o.random ?? Math.random)() * (cap / 2);
}
