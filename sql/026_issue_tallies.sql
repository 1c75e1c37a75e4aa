-- 026_issue_tallies.sql - running counts of each issue's deliveries by
-- status and of its opens, kept by triggers, so that `herald stats` (and
-- every caller of ledger_counts()) reads a few rows instead of scanning
-- the issue's rows (issue 19: 16 s at ten million subscribers, 10.4 s of
-- it counting 10M deliveries and grouping 3M opens by subscriber).
--
-- delivery_tallies: (issue, status) -> the number of deliveries rows with
-- that status.  open_tallies: issue -> its open events (total), the
-- subscribers among them (unique: events whose subscriber_id is NULL count
-- only in total) and the subscribers with at least one human open.  Both
-- are exactly what report.c's queries counted (report_opens_scan() keeps
-- the scan, the definition; tests/unit/test_report.c checks the two agree
-- after inserts, late sent_at, updates, deletes and erasures).
--
-- The human rule is report.h's REPORT_SQL_MACHINE_OPEN, written out here
-- because a migration cannot include a C macro: an open is a machine open
-- when its detail says ua "machine" or it came at most 2 s
-- (REPORT_PREFETCH_SECS) after its delivery's sent_at; no delivery or no
-- sent_at: only the ua decides.  As sent_at is set after the message is
-- handed over, an open can arrive before it and turn into a machine open
-- when it is set: the deliveries triggers redo that subscriber's state.
--
-- How each trigger counts: a row's share is computed against the other
-- rows of its (issue, subscriber), `e.id <> row.id`, which is the table
-- without it in every case (after an insert the row is there and left
-- out; after a delete it is gone), so an update is the old row's share
-- taken away and the new one's added.  Counts only go down through
-- UPDATE (never an upsert), so a removed issue's cascade cannot create
-- rows; the issue's own delete removes them.
--
-- human_opens: the open events that are human by that rule, a view so
-- that the rule is written once here (SQLite flattens it into each query).
-- It is written as a range, not as the NOT (...) of report.h, with the same
-- truth table (the ua test is 0 or 1, never NULL; `at` is NOT NULL, and
-- no sent_at means no bound): "ua test = 0 AND at > sent_at + 2".
--
-- events_opens: the open events of an issue by subscriber, then by that ua
-- test (an expression) and time, so that "has this subscriber another
-- human open" is one seek, not a walk of the subscriber's opens: a pixel
-- URL fetched a thousand times by a machine would otherwise make each new
-- open read all the earlier ones (found by bench/web.sh: serve took 230 s
-- to write 278,000 opens of 200 subscribers).  A partial index, so only
-- opens pay for it.  events_clicks: the clicks with their detail,
-- so that counting clicks (total, unique, per link) reads the index only
-- (1.0 -> 0.08 s for 500,000 clicks).
--
-- Cost: two small upserts per delivery status change and an index probe
-- per sent_at set (the send loop), one upsert and two probes per open
-- (the web server).
CREATE TABLE delivery_tallies (
	issue_id INTEGER NOT NULL,
	status   TEXT NOT NULL,
	n        INTEGER NOT NULL,
	PRIMARY KEY (issue_id, status)
) WITHOUT ROWID;

CREATE TABLE open_tallies (
	issue_id INTEGER PRIMARY KEY,
	total    INTEGER NOT NULL DEFAULT 0,
	uniq     INTEGER NOT NULL DEFAULT 0,
	human    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX events_opens ON events(issue_id, kind, subscriber_id,
	(json_extract(detail, '$.ua') IS 'machine'), at) WHERE kind = 'open';
CREATE INDEX events_clicks ON events(issue_id, kind, subscriber_id, detail) WHERE kind = 'click';

-- the counts of the rows already there (report.c's queries, per issue)
INSERT INTO delivery_tallies (issue_id, status, n)
SELECT issue_id, status, count(*) FROM deliveries GROUP BY issue_id, status;

INSERT INTO open_tallies (issue_id, total, uniq, human)
SELECT issue_id, sum(n), count(sid), ifnull(sum(sid IS NOT NULL AND human), 0)
FROM (SELECT e.issue_id, e.subscriber_id AS sid, count(*) AS n,
             max(NOT (json_extract(e.detail, '$.ua') IS 'machine' OR
                      ifnull(e.at <= (SELECT d.sent_at FROM deliveries d
                                      WHERE d.issue_id = e.issue_id
                                      AND d.subscriber_id = e.subscriber_id) + 2, 0))) AS human
      FROM events e WHERE e.kind = 'open' AND e.issue_id IS NOT NULL
      GROUP BY e.issue_id, e.subscriber_id)
GROUP BY issue_id;

-- --- deliveries by status ---------------------------------------------
CREATE TRIGGER delivery_tallies_insert AFTER INSERT ON deliveries
BEGIN
	INSERT INTO delivery_tallies (issue_id, status, n) VALUES (NEW.issue_id, NEW.status, 1)
	ON CONFLICT (issue_id, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER delivery_tallies_delete AFTER DELETE ON deliveries
BEGIN
	UPDATE delivery_tallies SET n = n - 1
	WHERE issue_id = OLD.issue_id AND status = OLD.status;
END;

CREATE TRIGGER delivery_tallies_update AFTER UPDATE OF issue_id, status ON deliveries
WHEN OLD.status IS NOT NEW.status OR OLD.issue_id IS NOT NEW.issue_id
BEGIN
	UPDATE delivery_tallies SET n = n - 1
	WHERE issue_id = OLD.issue_id AND status = OLD.status;
	INSERT INTO delivery_tallies (issue_id, status, n) VALUES (NEW.issue_id, NEW.status, 1)
	ON CONFLICT (issue_id, status) DO UPDATE SET n = n + 1;
END;

-- --- opens --------------------------------------------------------------
-- The rule above, once.
CREATE VIEW human_opens AS
SELECT e.id, e.issue_id, e.subscriber_id FROM events e
WHERE e.kind = 'open' AND (json_extract(e.detail, '$.ua') IS 'machine') = 0
AND e.at > coalesce((SELECT d.sent_at FROM deliveries d WHERE d.issue_id = e.issue_id
                     AND d.subscriber_id = e.subscriber_id) + 2, -9223372036854775808);

-- A row's share: total 1; unique 1 when no other open of its (issue,
-- subscriber); human 1 when it is human and no other open of that pair is.
CREATE TRIGGER open_tallies_insert AFTER INSERT ON events
WHEN NEW.kind = 'open' AND NEW.issue_id IS NOT NULL
BEGIN
	INSERT INTO open_tallies (issue_id) VALUES (NEW.issue_id) ON CONFLICT DO NOTHING;
	UPDATE open_tallies SET
		total = total + 1,
		uniq = uniq + (NEW.subscriber_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM events e WHERE e.issue_id = NEW.issue_id AND e.kind = 'open'
			AND e.subscriber_id = NEW.subscriber_id AND e.id <> NEW.id)),
		human = human + (NEW.subscriber_id IS NOT NULL AND NOT (
			json_extract(NEW.detail, '$.ua') IS 'machine' OR
			ifnull(NEW.at <= (SELECT d.sent_at FROM deliveries d WHERE d.issue_id = NEW.issue_id
			                  AND d.subscriber_id = NEW.subscriber_id) + 2, 0))
			AND NOT EXISTS (SELECT 1 FROM human_opens h WHERE h.issue_id = NEW.issue_id
			                AND h.subscriber_id = NEW.subscriber_id AND h.id <> NEW.id))
	WHERE issue_id = NEW.issue_id;
END;

CREATE TRIGGER open_tallies_delete AFTER DELETE ON events
WHEN OLD.kind = 'open' AND OLD.issue_id IS NOT NULL
BEGIN
	UPDATE open_tallies SET
		total = total - 1,
		uniq = uniq - (OLD.subscriber_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM events e WHERE e.issue_id = OLD.issue_id AND e.kind = 'open'
			AND e.subscriber_id = OLD.subscriber_id AND e.id <> OLD.id)),
		human = human - (OLD.subscriber_id IS NOT NULL AND NOT (
			json_extract(OLD.detail, '$.ua') IS 'machine' OR
			ifnull(OLD.at <= (SELECT d.sent_at FROM deliveries d WHERE d.issue_id = OLD.issue_id
			                  AND d.subscriber_id = OLD.subscriber_id) + 2, 0))
			AND NOT EXISTS (SELECT 1 FROM human_opens h WHERE h.issue_id = OLD.issue_id
			                AND h.subscriber_id = OLD.subscriber_id AND h.id <> OLD.id))
	WHERE issue_id = OLD.issue_id;
END;

-- An update (an erasure's tombstone subscriber, a detail without the
-- agent, a removed subscriber's NULL): the old row's share out, the new
-- row's in, both against the other rows.
CREATE TRIGGER open_tallies_update AFTER UPDATE OF kind, issue_id, subscriber_id, at, detail
ON events
WHEN (OLD.kind = 'open' AND OLD.issue_id IS NOT NULL) OR
     (NEW.kind = 'open' AND NEW.issue_id IS NOT NULL)
BEGIN
	UPDATE open_tallies SET
		total = total - 1,
		uniq = uniq - (OLD.subscriber_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM events e WHERE e.issue_id = OLD.issue_id AND e.kind = 'open'
			AND e.subscriber_id = OLD.subscriber_id AND e.id <> OLD.id)),
		human = human - (OLD.subscriber_id IS NOT NULL AND NOT (
			json_extract(OLD.detail, '$.ua') IS 'machine' OR
			ifnull(OLD.at <= (SELECT d.sent_at FROM deliveries d WHERE d.issue_id = OLD.issue_id
			                  AND d.subscriber_id = OLD.subscriber_id) + 2, 0))
			AND NOT EXISTS (SELECT 1 FROM human_opens h WHERE h.issue_id = OLD.issue_id
			                AND h.subscriber_id = OLD.subscriber_id AND h.id <> OLD.id))
	WHERE OLD.kind = 'open' AND issue_id = OLD.issue_id;
	INSERT INTO open_tallies (issue_id) SELECT NEW.issue_id
	WHERE NEW.kind = 'open' AND NEW.issue_id IS NOT NULL ON CONFLICT DO NOTHING;
	UPDATE open_tallies SET
		total = total + 1,
		uniq = uniq + (NEW.subscriber_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM events e WHERE e.issue_id = NEW.issue_id AND e.kind = 'open'
			AND e.subscriber_id = NEW.subscriber_id AND e.id <> NEW.id)),
		human = human + (NEW.subscriber_id IS NOT NULL AND NOT (
			json_extract(NEW.detail, '$.ua') IS 'machine' OR
			ifnull(NEW.at <= (SELECT d.sent_at FROM deliveries d WHERE d.issue_id = NEW.issue_id
			                  AND d.subscriber_id = NEW.subscriber_id) + 2, 0))
			AND NOT EXISTS (SELECT 1 FROM human_opens h WHERE h.issue_id = NEW.issue_id
			                AND h.subscriber_id = NEW.subscriber_id AND h.id <> NEW.id))
	WHERE NEW.kind = 'open' AND issue_id = NEW.issue_id;
END;

-- A delivery's sent_at decides the timing rule for its subscriber's opens.
-- For each (issue, subscriber) a delivery leaves or joins: has it a human
-- open now, against before (the old sent_at; NULL: no delivery there, as
-- the primary key allows one).  During a send the probe finds no open: the
-- delivery row exists before anyone can open the message.
CREATE TRIGGER open_tallies_delivery_insert AFTER INSERT ON deliveries
BEGIN
	UPDATE open_tallies SET human = human + EXISTS (
		SELECT 1 FROM human_opens h WHERE h.issue_id = NEW.issue_id
		AND h.subscriber_id = NEW.subscriber_id)
		- EXISTS (
		SELECT 1 FROM events e WHERE e.issue_id = NEW.issue_id AND e.kind = 'open'
		AND e.subscriber_id = NEW.subscriber_id
		AND (json_extract(e.detail, '$.ua') IS 'machine') = 0
		AND e.at > coalesce(NULL + 2, -9223372036854775808))
	WHERE issue_id = NEW.issue_id;
END;

CREATE TRIGGER open_tallies_delivery_delete AFTER DELETE ON deliveries
BEGIN
	UPDATE open_tallies SET human = human + EXISTS (
		SELECT 1 FROM human_opens h WHERE h.issue_id = OLD.issue_id
		AND h.subscriber_id = OLD.subscriber_id)
		- EXISTS (
		SELECT 1 FROM events e WHERE e.issue_id = OLD.issue_id AND e.kind = 'open'
		AND e.subscriber_id = OLD.subscriber_id
		AND (json_extract(e.detail, '$.ua') IS 'machine') = 0
		AND e.at > coalesce(OLD.sent_at + 2, -9223372036854775808))
	WHERE issue_id = OLD.issue_id;
END;

CREATE TRIGGER open_tallies_delivery_update AFTER UPDATE OF issue_id, subscriber_id, sent_at
ON deliveries
WHEN OLD.sent_at IS NOT NEW.sent_at OR OLD.issue_id IS NOT NEW.issue_id
     OR OLD.subscriber_id IS NOT NEW.subscriber_id
BEGIN
	UPDATE open_tallies SET human = human + EXISTS (
		SELECT 1 FROM human_opens h WHERE h.issue_id = OLD.issue_id
		AND h.subscriber_id = OLD.subscriber_id)
		- EXISTS (
		SELECT 1 FROM events e WHERE e.issue_id = OLD.issue_id AND e.kind = 'open'
		AND e.subscriber_id = OLD.subscriber_id
		AND (json_extract(e.detail, '$.ua') IS 'machine') = 0
		AND e.at > coalesce(OLD.sent_at + 2, -9223372036854775808))
	WHERE issue_id = OLD.issue_id;
	UPDATE open_tallies SET human = human + EXISTS (
		SELECT 1 FROM human_opens h WHERE h.issue_id = NEW.issue_id
		AND h.subscriber_id = NEW.subscriber_id)
		- EXISTS (
		SELECT 1 FROM events e WHERE e.issue_id = NEW.issue_id AND e.kind = 'open'
		AND e.subscriber_id = NEW.subscriber_id
		AND (json_extract(e.detail, '$.ua') IS 'machine') = 0
		AND e.at > coalesce(NULL + 2, -9223372036854775808))
	WHERE issue_id = NEW.issue_id AND (OLD.issue_id IS NOT NEW.issue_id
	                                   OR OLD.subscriber_id IS NOT NEW.subscriber_id);
END;

-- a removed issue's counts go with it (its rows' triggers only decrement)
CREATE TRIGGER issue_tallies_delete AFTER DELETE ON issues
BEGIN
	DELETE FROM delivery_tallies WHERE issue_id = OLD.id;
	DELETE FROM open_tallies WHERE issue_id = OLD.id;
END;
