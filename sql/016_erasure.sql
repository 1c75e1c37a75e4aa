-- 016_erasure.sql - erasing a person (privacy.h): what is kept after
-- `herald sub forget` or the preference centre's "delete me", and the
-- mailed links that confirm a reader's own request.
--
-- erased: one row per erased address, holding only a keyed hash of it
-- (HMAC-SHA256 of the identity key, address.h, with the token secret of
-- token.h, hex), never the address.  A bulk import hashes each address
-- it does not know and skips one found here (subscriber.h rule 10), so a
-- stale spreadsheet cannot silently bring back someone who asked to be
-- forgotten; an explicit sign-up (`sub add`, the web form) can, as the
-- person's new consent.  `suppressed` is 1 when the address was itself
-- suppressed (a complaint, an admin's pattern) when it was erased: the
-- suppression survives as this hash, and only as this hash, and still
-- refuses every sign-up.  No time and no rowid: rows cannot be put in
-- the order they were written, so they cannot be matched to the log.
--
-- erasures: the erasure log, one row per erasure: when, and by whom (the
-- admin's `--by` text, or 'preference centre').  Never what was erased:
-- no address, hash, name or id.
--
-- erase_requests: a reader's "delete me" from the preference centre waits
-- here until they follow the link mailed to them (/erase/CODE).  The row
-- keeps the SHA-256 of the link's random code, not the code, so the
-- database alone cannot make the link; the link works once (used_at) and
-- until created_at plus [web] confirm_ttl.  The rows go with the
-- subscriber (CASCADE), so an erasure leaves none behind.

CREATE TABLE erased (
	hash       TEXT PRIMARY KEY CHECK (length(hash) = 64),
	suppressed INTEGER NOT NULL DEFAULT 0 CHECK (suppressed IN (0, 1))
) WITHOUT ROWID;

CREATE TABLE erasures (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,
	by_whom TEXT NOT NULL CHECK (length(by_whom) BETWEEN 1 AND 200)
);

CREATE TABLE erase_requests (
	id            INTEGER PRIMARY KEY,
	subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	code_hash     TEXT NOT NULL UNIQUE CHECK (length(code_hash) = 64),
	created_at    INTEGER NOT NULL,
	used_at       INTEGER
);
CREATE INDEX erase_requests_by_subscriber ON erase_requests(subscriber_id);
