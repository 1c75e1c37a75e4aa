-- 004_bounces.sql - returned mail, what it meant, and who is never mailed.
--
-- inbound: one row per distinct message `herald bounce` has read, keyed by
-- the SHA-256 of its bytes, so that reading the same message twice (an MTA
-- retrying a pipe, a Maildir or IMAP message processed again after a crash
-- between commit and delete) changes nothing.
--
-- bounces: one row per failed recipient, whether the failure came back as
-- a DSN or an ARF report (source 'dsn', 'arf') or was met at SMTP time by
-- the sender (source 'smtp'); the same reasons (sisimai's vocabulary) for
-- both, so `stats` and `sub show` need not care where it came from.
-- subscriber_id is NULL when no subscriber could be found: the row is kept
-- for `herald bounce` diagnostics.
--
-- suppressions: addresses ('user@domain', the lower-case email_key) and
-- whole domains ('@domain') that no send, import or subscription touches.

CREATE TABLE inbound (
	id          INTEGER PRIMARY KEY,
	sha256      TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
	message_id  TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL
	            CHECK (kind IN ('bounce', 'complaint', 'autoreply', 'delayed', 'delivered',
	                            'unsubscribe', 'unknown')),
	shape       TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',   -- stdin, the Maildir file, or the message's URL
	received_at INTEGER NOT NULL,
	summary     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE bounces (
	id            INTEGER PRIMARY KEY,
	subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,
	issue_id      INTEGER REFERENCES issues(id) ON DELETE SET NULL,
	list_id       INTEGER REFERENCES lists(id) ON DELETE SET NULL,
	inbound_id    INTEGER REFERENCES inbound(id) ON DELETE SET NULL,
	recipient     TEXT NOT NULL,
	source        TEXT NOT NULL CHECK (source IN ('smtp', 'dsn', 'arf')),
	class         TEXT NOT NULL CHECK (class IN ('hard', 'soft', 'complaint')),
	reason        TEXT NOT NULL,
	status        TEXT NOT NULL DEFAULT '',  -- RFC 3463 enhanced code
	reply_code    INTEGER,                    -- RFC 5321 reply code
	diagnostic    TEXT NOT NULL DEFAULT '',
	remote_mta    TEXT NOT NULL DEFAULT '',
	at            INTEGER NOT NULL
);
CREATE INDEX bounces_by_subscriber ON bounces(subscriber_id, class, at);
CREATE INDEX bounces_by_issue ON bounces(issue_id);

CREATE TABLE suppressions (
	pattern    TEXT PRIMARY KEY
	           CHECK (length(pattern) BETWEEN 3 AND 255 AND pattern = lower(pattern)
	                  AND instr(pattern, '@') > 0),
	reason     TEXT NOT NULL DEFAULT 'manual',
	note       TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
