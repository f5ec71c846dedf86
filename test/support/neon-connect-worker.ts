// A Worker for test/drivers/neon-connect.test.ts: one createSession through pg-edge-session/neon with the
// database URL and wsProxy the request names, answering what the library threw.
import { neonSessions } from '../../src/neon.ts';

export default {
  async fetch(request: Request): Promise<Response> {
    const q = new URL(request.url).searchParams;
    const proxy = q.get('proxy');
    const { manager } = neonSessions({
      databaseUrl: q.get('db') as string,
      config: { schemaName: q.get('schema') ?? 'public' },
      ...(proxy === null ? {} : { wsProxy: proxy }),
    });
    try {
      await manager.createSession('neon-connect-user');
      return Response.json({ ok: true });
    } catch (e) {
      const err = e as { name?: string; code?: string; message?: string };
      return Response.json({ name: err.name, code: err.code, message: err.message });
    }
  },
};
