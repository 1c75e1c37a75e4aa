-- 017_tracking_retention.sql - tracking by consent (tracking.h) and the
-- retention of old rows (retention.h).
--
-- issues.tracking_mode: the [tracking] mode the issue's send went out
-- under ('on', 'consent', 'anonymous', 'off'), written once when the send
-- starts (or resumes, for a send begun before this migration) and never
-- changed after, so that a config change between a pause and a resume
-- cannot mix two kinds of copies in one send; 'off' when the issue itself
-- had tracking off.  NULL: not sent yet.  `herald stats` shows it.
--
-- issue_figures: one issue's figures kept as report.c computed them just
-- before retention first removed any of its events or deliveries
-- (report_freeze()).  From then on `herald stats` reads the figures that
-- depend on those rows from here, so an issue's stats do not change when
-- its rows go.  `figures` is report.c's own JSON, not the --json contract.
-- A removed issue takes its row with it.
--
-- events may hold subscriber_id NULL since 001 (a removed subscriber);
-- anonymous tracking writes its opens and clicks that way from the start.
--
-- bounces_by_inbound: removing old inbound rows sets bounces.inbound_id to
-- NULL (ON DELETE SET NULL); without an index each removed row would scan
-- the whole bounces table.  inbound_by_time: retention finds the old rows
-- as a range instead of a scan.
ALTER TABLE issues ADD COLUMN tracking_mode TEXT
	CHECK (tracking_mode IN ('on', 'consent', 'anonymous', 'off'));

CREATE TABLE issue_figures (
	issue_id  INTEGER PRIMARY KEY REFERENCES issues(id) ON DELETE CASCADE,
	frozen_at INTEGER NOT NULL,
	figures   TEXT NOT NULL CHECK (json_valid(figures))
);

CREATE INDEX bounces_by_inbound ON bounces(inbound_id);
CREATE INDEX inbound_by_time ON inbound(received_at);
