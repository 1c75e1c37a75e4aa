-- 001_init.sql - herald's first schema: lists, subscribers, subscriptions,
-- issues, the per-recipient delivery ledger and the events that come back.
--
-- Conventions: times are Unix seconds (UTC) in INTEGER columns; every status
-- column has a CHECK listing its states so a bad write fails loudly; rows are
-- never deleted from deliveries or events while their issue exists (they are
-- the history), and foreign keys cascade only from the owning row.

CREATE TABLE lists (
	id            INTEGER PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE
	              CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9._-]*'),
	title         TEXT NOT NULL DEFAULT '',
	double_opt_in INTEGER NOT NULL DEFAULT 0 CHECK (double_opt_in IN (0, 1)),
	public        INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
	created_at    INTEGER NOT NULL
);

-- email is the address as first given (domain lower-cased); email_key, the
-- whole address lower-cased, is the identity: Grace@Example.net and
-- grace@example.net are one subscriber.
CREATE TABLE subscribers (
	id          INTEGER PRIMARY KEY,
	email       TEXT NOT NULL,
	email_key   TEXT NOT NULL UNIQUE,
	name        TEXT NOT NULL DEFAULT '',
	attributes  TEXT NOT NULL DEFAULT '{}'
	            CHECK (json_valid(attributes) AND json_type(attributes) = 'object'),
	status      TEXT NOT NULL DEFAULT 'active'
	            CHECK (status IN ('active', 'blocklisted', 'bounced', 'complained')),
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);

CREATE TABLE subscriptions (
	list_id         INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
	subscriber_id   INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	status          TEXT NOT NULL
	                CHECK (status IN ('unconfirmed', 'confirmed', 'unsubscribed')),
	created_at      INTEGER NOT NULL,
	confirmed_at    INTEGER,
	unsubscribed_at INTEGER,
	PRIMARY KEY (list_id, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX subscriptions_by_subscriber ON subscriptions(subscriber_id);

-- An issue keeps its Markdown source and the parts rendered from it at
-- `issue new`, still holding the merge fields: what was previewed is what
-- is sent, even if the layout template changes later.
CREATE TABLE issues (
	id             INTEGER PRIMARY KEY,
	list_id        INTEGER NOT NULL REFERENCES lists(id) ON DELETE RESTRICT,
	subject        TEXT NOT NULL,
	preheader      TEXT NOT NULL DEFAULT '',
	from_name      TEXT NOT NULL DEFAULT '',
	from_addr      TEXT NOT NULL,
	reply_to       TEXT NOT NULL DEFAULT '',
	source_path    TEXT NOT NULL DEFAULT '',
	markdown       TEXT NOT NULL,
	html           TEXT NOT NULL,
	text           TEXT NOT NULL,
	links          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(links)),
	allow_html     INTEGER NOT NULL DEFAULT 0 CHECK (allow_html IN (0, 1)),
	status         TEXT NOT NULL DEFAULT 'draft'
	               CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled')),
	send_at        INTEGER,
	created_at     INTEGER NOT NULL,
	started_at     INTEGER,
	finished_at    INTEGER
);
CREATE INDEX issues_due ON issues(status, send_at);

-- The ledger: one row per recipient of an issue, created when the send
-- starts.  States (see src/ledger.c):
--   pending -> sending -> sent | deferred | bounced | failed
--   deferred -> sending (on retry)
CREATE TABLE deliveries (
	issue_id      INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
	subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	status        TEXT NOT NULL DEFAULT 'pending'
	              CHECK (status IN ('pending', 'sending', 'sent', 'deferred', 'bounced', 'failed', 'skipped')),
	attempts      INTEGER NOT NULL DEFAULT 0,
	message_id    TEXT,          -- set when first claimed; the same on every retry
	smtp_code     INTEGER,
	smtp_reply    TEXT,
	next_attempt_at INTEGER,       -- when a deferred row is due again
	first_attempt_at INTEGER,      -- start of the retry window
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	sent_at       INTEGER,
	PRIMARY KEY (issue_id, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_status ON deliveries(issue_id, status);

CREATE TABLE events (
	id            INTEGER PRIMARY KEY,
	kind          TEXT NOT NULL
	              CHECK (kind IN ('open', 'click', 'bounce', 'complaint', 'unsubscribe', 'subscribe', 'confirm')),
	issue_id      INTEGER REFERENCES issues(id) ON DELETE SET NULL,
	subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE SET NULL,
	list_id       INTEGER REFERENCES lists(id) ON DELETE SET NULL,
	at            INTEGER NOT NULL,
	detail        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
);
CREATE INDEX events_by_issue ON events(issue_id, kind);
CREATE INDEX events_by_subscriber ON events(subscriber_id);
