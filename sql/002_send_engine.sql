-- 002_send_engine.sql - what the concurrent, rate-limited sender keeps.
--
-- deliveries.relay: which relay took the message (the [smtp] section name).
-- relay_usage: one row per message handed to a relay, so that the sliding
-- windows (max_per_hour, max_per_day) hold across runs: a cron run at 10:05
-- knows what the 09:30 run sent.  Rows older than a day are pruned.
-- deliveries_due replaces deliveries_by_status: the same prefix, plus the
-- retry time, so finding due deferred rows is an index range scan.

ALTER TABLE deliveries ADD COLUMN relay TEXT;

DROP INDEX deliveries_by_status;
CREATE INDEX deliveries_due ON deliveries(issue_id, status, next_attempt_at);

CREATE TABLE relay_usage (
	relay TEXT NOT NULL,
	at    REAL NOT NULL      -- Unix time with fractions, when the transfer started
);
CREATE INDEX relay_usage_by_time ON relay_usage(relay, at);
