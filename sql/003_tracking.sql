-- 003_tracking.sql - open and click tracking, per issue.
--
-- issues.tracking: 1 when the issue's mail carries the open pixel and its
-- links go through the click redirect (front matter `tracking:`, default
-- from [web] tracking).  A subscriber can still opt out with the attribute
-- tracking = no, honoured when their copy is built.
-- events_by_kind_time serves the stats report's per-hour chart.

ALTER TABLE issues ADD COLUMN tracking INTEGER NOT NULL DEFAULT 1 CHECK (tracking IN (0, 1));
CREATE INDEX events_by_issue_time ON events(issue_id, kind, at);
