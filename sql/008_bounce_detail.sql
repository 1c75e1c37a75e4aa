-- 008_bounce_detail.sql - delay notices kept, why each class was chosen,
-- and what is needed to guess whom an unmatched bounce was about.
--
-- bounces.class may be 'delayed': a notice that the remote side is still
-- trying (RFC 3464 Action: delayed) is recorded so `sub show` can show it,
-- but it is not a failure: it never counts toward [bounce] soft_limit
-- (bouncelog.c counts class 'soft' only), never marks anybody, and the
-- stats leave it out.  An expiry (the remote side gave up) is class 'soft',
-- reason 'expired', and does count.
--
-- bounces.why: the classifier's one line saying how class and reason were
-- decided (bounce_recipient.why); '' for rows from before this version and
-- for SMTP-time rejections, which bounce_classify() does not explain.
--
-- inbound.envelope_to, inbound.orig_to: the address the message came back
-- to (the VERP address) and the To of the returned original, as
-- bounce_parse() found them.  `herald bounce unmatched` uses them as the
-- best guess of whom a bounce was about when the report names nobody.
--
-- SQLite cannot change a CHECK constraint, so bounces is rebuilt the way
-- https://www.sqlite.org/lang_altertable.html#otheralter describes: create
-- the new table under another name, copy the rows (ids included), drop the
-- old one, rename the new one, create the indexes again.  About foreign
-- keys: db_open() turns them on before migrating, and db.c runs this file
-- inside a transaction, where PRAGMA foreign_keys cannot be changed (it is
-- a silent no-op), so this script is written to be right with enforcement
-- on rather than pretending to turn it off:
--   - no table references bounces, so the DROP's implicit DELETE fires no
--     ON DELETE action anywhere and loses nothing but the old copy;
--   - the copy is checked row by row against subscribers, issues, lists
--     and inbound, which is the foreign_key_check the procedure asks for
--     at its end: a dangling id fails the migration, which rolls back and
--     leaves the database at version 7 as it was;
--   - the rename is from bounces_new, which nothing references either, and
--     there are no views or triggers to rewrite.

ALTER TABLE inbound ADD COLUMN envelope_to TEXT NOT NULL DEFAULT '';
ALTER TABLE inbound ADD COLUMN orig_to TEXT NOT NULL DEFAULT '';

CREATE TABLE bounces_new (
	id            INTEGER PRIMARY KEY,
	subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,
	issue_id      INTEGER REFERENCES issues(id) ON DELETE SET NULL,
	list_id       INTEGER REFERENCES lists(id) ON DELETE SET NULL,
	inbound_id    INTEGER REFERENCES inbound(id) ON DELETE SET NULL,
	recipient     TEXT NOT NULL,
	source        TEXT NOT NULL CHECK (source IN ('smtp', 'dsn', 'arf')),
	class         TEXT NOT NULL CHECK (class IN ('hard', 'soft', 'complaint', 'delayed')),
	reason        TEXT NOT NULL,
	status        TEXT NOT NULL DEFAULT '',  -- RFC 3463 enhanced code
	reply_code    INTEGER,                    -- RFC 5321 reply code
	diagnostic    TEXT NOT NULL DEFAULT '',
	remote_mta    TEXT NOT NULL DEFAULT '',
	at            INTEGER NOT NULL,
	why           TEXT NOT NULL DEFAULT ''    -- how class and reason were decided
);

INSERT INTO bounces_new (id, subscriber_id, issue_id, list_id, inbound_id, recipient, source,
                         class, reason, status, reply_code, diagnostic, remote_mta, at)
	SELECT id, subscriber_id, issue_id, list_id, inbound_id, recipient, source,
	       class, reason, status, reply_code, diagnostic, remote_mta, at
	FROM bounces;

DROP TABLE bounces;
ALTER TABLE bounces_new RENAME TO bounces;

CREATE INDEX bounces_by_subscriber ON bounces(subscriber_id, class, at);
CREATE INDEX bounces_by_issue ON bounces(issue_id);
