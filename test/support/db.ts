// Opens the test database through either driver and gives each test file its own schema.
import { Pool as NeonPool, neonConfig } from '@neondatabase/serverless';
import { drizzle as drizzleNeon } from 'drizzle-orm/neon-serverless';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { inject } from 'vitest';
import ws from 'ws';
import type { TransactionalDatabase } from '../../src/db/executor.ts';

export const DRIVERS = ['node-postgres', 'neon-serverless'] as const;
export type Driver = (typeof DRIVERS)[number];

export function databaseUrl(): string {
  return inject('databaseUrl');
}

let neonConfigured = false;
/** Neon's driver against local PostgreSQL: through the proxy, without TLS, without the write coalescing delay. */
export function configureNeon(proxyPort: number = inject('wsProxyPort')): void {
  if (neonConfigured) return;
  neonConfig.webSocketConstructor = ws;
  neonConfig.wsProxy = (host, port) => `127.0.0.1:${proxyPort}/v2?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  neonConfig.coalesceWrites = false;
  neonConfigured = true;
}

export interface TestDb {
  driver: Driver;
  db: TransactionalDatabase;
  /** Plain node-postgres pool for out-of-band SQL ("typed into psql"). */
  admin: pg.Pool;
  close(): Promise<void>;
}

export async function openDb(driver: Driver, options: { max?: number } = {}): Promise<TestDb> {
  const url = databaseUrl();
  const admin = new pg.Pool({ connectionString: url, max: 4 });
  if (driver === 'node-postgres') {
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10 });
    return {
      driver,
      db: drizzlePg(pool) as unknown as TransactionalDatabase,
      admin,
      close: async () => {
        await pool.end();
        await admin.end();
      },
    };
  }
  configureNeon();
  const pool = new NeonPool({ connectionString: url, max: options.max ?? 10 });
  return {
    driver,
    db: drizzleNeon(pool) as unknown as TransactionalDatabase,
    admin,
    close: async () => {
      await pool.end();
      await admin.end();
    },
  };
}

let counter = 0;
/** A schema name no other test file uses. */
export function uniqueSchema(tag: string): string {
  counter++;
  return `t_${tag}_${process.pid}_${counter}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase().slice(0, 50);
}

/** A clock the test moves by hand. */
export function fakeClock(start = Date.UTC(2030, 0, 1)) {
  let now = start;
  const clock = () => now;
  clock.advance = (ms: number) => {
    now += ms;
  };
  clock.set = (ms: number) => {
    now = ms;
  };
  return clock;
}

export async function dropSchema(admin: pg.Pool, schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}
