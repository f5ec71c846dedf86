// createSessionTables().tables (what README.md's drizzle-kit schema file exports) holds every table the
// function builds, and everySessionTableExported() refuses an export list that leaves one out.
import { is } from 'drizzle-orm';
import { PgSchema, PgTable } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.ts';
import { createSessionTables, everySessionTableExported } from '../../src/schema.ts';

describe('createSessionTables().tables', () => {
  it('holds every table and the schema the function builds, nothing else', () => {
    const built = createSessionTables({ schemaName: 'auth', tablePrefix: 'app_' });
    const entities = (o: object) => new Set(Object.values(o).filter((v) => is(v, PgTable) || is(v, PgSchema)));
    const { tables, ...rest } = built;
    expect(entities(tables)).toEqual(entities(rest));
    expect(Object.values(tables).every((v) => is(v, PgTable) || is(v, PgSchema))).toBe(true);
    expect(entities(tables).size).toBe(6);
    // The schema public needs no schema object (drizzle-kit always keeps it; pgSchema refuses 'public').
    expect(createSessionTables().tables.sessionSchema).toBeUndefined();
  });

  it('everySessionTableExported: accepts an empty rest, names what a shorter export list leaves out', () => {
    const { sessionSchema, sessions, sessionChanges, sessionChangesHorizon, sessionMigrations, ...notExported } = createSessionTables({
      schemaName: 'auth',
    }).tables;
    expect([sessionSchema, sessions, sessionChanges, sessionChangesHorizon, sessionMigrations].every(Boolean)).toBe(true);
    // @ts-expect-error the audit table is left in the rest: tsc reports it at the call
    const call = () => everySessionTableExported(notExported);
    expect(call).toThrow(InvalidArgumentError);
    expect(call).toThrow(/does not export sessionAudit from createSessionTables\(\.\.\.\)\.tables/);
    const { sessionAudit, ...none } = notExported;
    expect(sessionAudit).toBeDefined();
    expect(() => everySessionTableExported(none)).not.toThrow();
    // The schema public: sessionSchema undefined, left in the rest, is not a table left out (its type still
    // says it may be a schema: the README's list exports it whatever the schema).
    const {
      sessions: s2,
      sessionChanges: c2,
      sessionChangesHorizon: h2,
      sessionAudit: a2,
      sessionMigrations: m2,
      ...publicRest
    } = createSessionTables().tables;
    expect([s2, c2, h2, a2, m2].every(Boolean)).toBe(true);
    expect(() => everySessionTableExported(publicRest as unknown as Record<string, undefined>)).not.toThrow();
  });
});
