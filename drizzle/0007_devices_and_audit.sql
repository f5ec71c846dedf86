CREATE TABLE "session_audit" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "session_audit_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"session_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"group_id" text,
	"reason" text NOT NULL,
	"ended_at" timestamp (3) with time zone NOT NULL,
	"created_at" timestamp (3) with time zone NOT NULL,
	"last_accessed" timestamp (3) with time zone NOT NULL,
	"user_agent" text,
	"device" text,
	"ip" text,
	"label" text
);
--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "user_agent" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "device" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "ip" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "label" text;--> statement-breakpoint
CREATE INDEX "session_audit_user_idx" ON "session_audit" USING btree ("user_id","ended_at");--> statement-breakpoint
CREATE INDEX "session_audit_session_idx" ON "session_audit" USING btree ("session_id");--> statement-breakpoint
CREATE INDEX "session_audit_ended_idx" ON "session_audit" USING btree ("ended_at");