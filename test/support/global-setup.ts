// Runs once per `vitest run`: picks the database (DATABASE_URL, else an embedded PostgreSQL started
// here) and starts the WebSocket-to-TCP proxy the Neon driver goes through.
import type { TestProject } from 'vitest/node';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../harness/embedded-db.ts';
import { startWsProxy, type WsProxy } from '../../harness/ws-proxy.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    wsProxyPort: number;
  }
}

let embedded: EmbeddedDatabase | undefined;
let proxy: WsProxy | undefined;

export async function setup(project: TestProject) {
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres();
    url = embedded.url;
    console.log(`[test] DATABASE_URL unset: started embedded PostgreSQL at ${url.replace(/:[^:@]*@/, ':***@')}`);
  }
  proxy = await startWsProxy();
  project.provide('databaseUrl', url);
  project.provide('wsProxyPort', proxy.port);
}

export async function teardown() {
  await proxy?.close();
  await embedded?.stop();
}
