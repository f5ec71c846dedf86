import { defineConfig } from 'drizzle-kit';

// Generates drizzle/ from the default-configuration tables. migrate() renders the same SQL for any
// schemaName/tablePrefix (see src/db/migrations.ts, produced by `npm run db:embed`).
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './drizzle',
});
