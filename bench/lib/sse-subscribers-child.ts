// A process of stream subscribers for the subscribers bench: opens N `GET /v1/stream` connections to a
// worker and reads them as fast as it can, counting bytes and SSE events per connection. Kept out of the
// bench process so reading 1,000 streams does not delay the latency probe's own event loop.
//
// argv: workerUrl secret n. IPC: sends { type: 'ready', open } once every stream delivered its first event;
// then answers { cmd: 'mark' } (zero the counters) and { cmd: 'report' } with
// { open, closed, refused, minBytes, maxBytes, minEvents, gotBytes: number[] }.
import http from 'node:http';

const [url, secret, nArg] = process.argv.slice(2) as [string, string, string];
const n = Number(nArg);
const u = new URL(`${url}/v1/stream`);

interface Conn {
  bytes: number;
  events: number;
  closed: boolean;
  /** The last byte of the previous chunk, when an event delimiter could straddle two chunks. */
  tail: string;
}
const conns: Conn[] = [];
let refused = 0;
let firstEvents = 0;

function open(): Promise<void> {
  return new Promise((resolve) => {
    const c: Conn = { bytes: 0, events: 0, closed: false, tail: '' };
    const req = http.get(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        agent: false,
        headers: { authorization: `Bearer ${secret}`, accept: 'text/event-stream' },
      },
      (res) => {
        if (res.statusCode !== 200) {
          refused++;
          res.resume();
          resolve();
          return;
        }
        conns.push(c);
        let first = true;
        res.on('data', (d: Buffer) => {
          c.bytes += d.length;
          // Events end with a blank line; count them without decoding the payload.
          const s = c.tail + d.toString('latin1');
          let i = s.indexOf('\n\n');
          while (i !== -1) {
            c.events++;
            if (first) {
              first = false;
              firstEvents++;
            }
            i = s.indexOf('\n\n', i + 2);
          }
          c.tail = s.endsWith('\n\n') ? '' : s.slice(-1);
        });
        res.on('close', () => (c.closed = true));
        resolve();
      },
    );
    req.on('error', () => {
      c.closed = true;
      resolve();
    });
  });
}

for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => open()));
const deadline = Date.now() + 30_000;
while (firstEvents < conns.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
process.send?.({ type: 'ready', open: conns.length, refused });

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mark') {
    for (const c of conns) {
      c.bytes = 0;
      c.events = 0;
    }
    process.send?.({ type: 'marked' });
  } else if (m.cmd === 'report') {
    const live = conns.filter((c) => !c.closed);
    const bytes = conns.map((c) => c.bytes);
    process.send?.({
      type: 'report',
      open: live.length,
      closed: conns.length - live.length,
      refused,
      minBytes: Math.min(...bytes),
      maxBytes: Math.max(...bytes),
      minEvents: Math.min(...conns.map((c) => c.events)),
    });
  } else if (m.cmd === 'exit') {
    process.exit(0);
  }
});
