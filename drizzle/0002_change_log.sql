CREATE TABLE "session_changes" (
	"xid" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"session_id" uuid,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "session_changes_horizon" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"pruned_below" "xid8" NOT NULL
);
--> statement-breakpoint
CREATE INDEX "session_changes_xid_idx" ON "session_changes" USING btree ("xid");