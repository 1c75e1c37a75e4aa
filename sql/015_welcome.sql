-- 015_welcome.sql - a list's welcome mail, sent once to each new
-- confirmed subscriber through the ledger (welcome.h).
--
-- issues.kind: 'campaign' for every issue made by `issue new` (all issues
-- before this migration), 'welcome' for one made by `herald list set NAME
-- --welcome FILE.md`.  A welcome issue is never snapshotted: its
-- deliveries rows are added one at a time, each in the transaction that
-- confirms a subscription (ledger.h (8)), and it moves between sending and
-- sent as rows come and go (issue.h).
--
-- lists.welcome_issue_id: the list's current welcome issue, NULL for none
-- (`list set --no-welcome`, or the issue was removed).
--
-- welcomes: who has been given a list's welcome, one row per subscriber
-- and list, ever.  The primary key is the "exactly once" promise: a second
-- confirmation, a resubscribe, or a new welcome file for the list finds
-- the row and adds no delivery.  issue_id names the welcome issue that was
-- queued (NULL once that issue is removed: the promise outlives it).

ALTER TABLE issues ADD COLUMN kind TEXT NOT NULL DEFAULT 'campaign'
	CHECK (kind IN ('campaign', 'welcome'));

ALTER TABLE lists ADD COLUMN welcome_issue_id INTEGER
	REFERENCES issues(id) ON DELETE SET NULL;

CREATE TABLE welcomes (
	list_id       INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
	subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	issue_id      INTEGER REFERENCES issues(id) ON DELETE SET NULL,
	created_at    INTEGER NOT NULL,
	PRIMARY KEY (list_id, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX welcomes_by_subscriber ON welcomes(subscriber_id);
CREATE INDEX welcomes_by_issue ON welcomes(issue_id);
