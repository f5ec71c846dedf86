import { describe, expect, it } from 'vitest';
import { DRIVERS } from '../support/db.ts';
import { useStore } from '../support/store-suite.ts';

describe.each(DRIVERS)('smoke (%s)', (driver) => {
  const fx = useStore(driver, 'smoke');
  it('creates, reads, updates and deletes a session', async () => {
    const m = fx.manager<{ role: string; n: number }>();
    const { session, token } = await m.createSession('u1', { role: 'admin' });
    expect(session.get('role')).toBe('admin');
    m.clearCache();
    const s = await m.getSession(token);
    expect(s?.get('role')).toBe('admin');
    s!.set('n', 1);
    await m.updateSession(s!);
    m.clearCache();
    const s2 = await m.getSession(token);
    expect(s2?.get('n')).toBe(1);
    expect(s2?.version).toBe(2);
    expect(await m.deleteSession(token)).toBe(true);
    expect(await m.getSession(token)).toBeNull();
  });
});
