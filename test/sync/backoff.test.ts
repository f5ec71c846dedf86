// One reconnect rule for the worker's listener and the sync client's stream (src/sync/backoff.ts): capped
// exponential backoff with equal jitter, as its comment says.
import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/sync/backoff.ts';

describe('backoffDelay', () => {
  it('is half the cap plus a random share of the other half, the cap doubling from base up to max', () => {
    const caps = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
    caps.forEach((cap, attempt) => {
      expect(backoffDelay(attempt, { max: 5000, random: () => 0 })).toBe(cap / 2);
      expect(backoffDelay(attempt, { max: 5000, random: () => 0.999999 })).toBeCloseTo(cap, 2);
      expect(backoffDelay(attempt, { max: 5000, random: () => 0.5 })).toBe((3 * cap) / 4);
    });
    expect(backoffDelay(0, { base: 250, max: 10_000, random: () => 0 })).toBe(125);
  });

  it('stays within [max/2, max] for any attempt, however large, and treats a negative one as the first', () => {
    for (const attempt of [20, 31, 1000, Number.MAX_SAFE_INTEGER]) {
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, { max: 10_000 });
        expect(d).toBeGreaterThanOrEqual(5000);
        expect(d).toBeLessThanOrEqual(10_000);
      }
    }
    expect(backoffDelay(-3, { max: 5000, random: () => 0 })).toBe(50);
  });

  it('spreads a crowd: 1,000 clients retrying together do not come back at the same moment', () => {
    const delays = Array.from({ length: 1000 }, () => backoffDelay(5, { max: 10_000 }));
    const buckets = new Set(delays.map((d) => Math.floor(d / 100)));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(1600);
    expect(buckets.size).toBeGreaterThan(10);
  });
});
