#!/usr/bin/env node
// The library's CLI (plain node, from the installed package): prints the migration SQL for a migration
// tool you own. Everything it prints comes from migrationSql(), the same embedded list migrate() runs.
import { parseArgs } from 'node:util';
import { migrationSql, migrationTags } from '../src/migration-sql.ts';

const HELP = `pg-edge-session — SQL of the session tables' migrations

Usage:
  pg-edge-session sql [--schema NAME] [--prefix PREFIX] [--mode all|drizzle-kit] [--after TAG]
  pg-edge-session tags

sql    Prints what migrate() runs, for any schema name and table prefix, separated by
       "--> statement-breakpoint" (drizzle-kit's separator), ending with the migration tags recorded
       in <schema>.<prefix>session_migrations (so migrate() then has nothing to do).
         --schema   schema name (default public)
         --prefix   table prefix (default empty)
         --mode     all (default): tables included; drizzle-kit: without the tables, columns and indexes
                    drizzle-kit generates from createSessionTables() (for \`drizzle-kit generate --custom\`)
         --after    only the migrations after this tag (an upgrade)
tags   Lists the migration tags, oldest first.
`;

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      schema: { type: 'string' },
      prefix: { type: 'string' },
      mode: { type: 'string' },
      after: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (rest.length > 0) throw new Error(`unexpected argument ${JSON.stringify(rest[0])}`);
  if (command === 'tags') {
    process.stdout.write(`${migrationTags().join('\n')}\n`);
    return 0;
  }
  if (command !== 'sql') throw new Error(`unknown command ${JSON.stringify(command)} (try --help)`);
  const mode = values.mode ?? 'all';
  if (mode !== 'all' && mode !== 'drizzle-kit') throw new Error(`--mode: expected all or drizzle-kit, got ${JSON.stringify(mode)}`);
  process.stdout.write(
    migrationSql({
      mode,
      ...(values.schema === undefined ? {} : { schemaName: values.schema }),
      ...(values.prefix === undefined ? {} : { tablePrefix: values.prefix }),
      ...(values.after === undefined ? {} : { after: values.after }),
    }),
  );
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`pg-edge-session: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
