// SyncClient against a misbehaving worker (a plain HTTP server of the test's own): a stream that goes
// silent is dropped and reconnected. No database is needed (directFallback off, nothing read).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SessionManager } from '../src/manager.ts';
import { SyncClient } from '../src/sync.ts';

describe('SyncClient stream mode', () => {
  it('reconnects when the stream goes silent (half-open connection)', async () => {
    let connections = 0;
    const server = createServer((req, res) => {
      connections++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // one event, then silence
      res.write(`event: changes\ndata: ${JSON.stringify({ from: '', cursor: '10:10:', ids: [], reset: true, freshAsOf: Date.now() })}\n\n`);
      req.on('close', () => res.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const manager = new SessionManager({
      execute: async () => {
        throw new Error('this test reads nothing from the database');
      },
    });
    const errors: unknown[] = [];
    const sync = new SyncClient(manager, {
      workerUrl: url,
      mode: 'stream',
      streamIdleTimeout: 200,
      directFallback: false,
      onError: (e) => errors.push(e),
    });
    sync.start();
    const deadline = Date.now() + 5000;
    while (connections < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await sync.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    expect(connections).toBeGreaterThanOrEqual(3);
    expect(sync.cursor).toBe('10:10:');
    expect(errors.some((e) => String((e as Error)?.message ?? e).includes('silent'))).toBe(true);
  });
});
