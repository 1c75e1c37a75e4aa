-- 019_api.sql - keys of the HTTP API (apikey.h) and its one-off mail's
-- idempotency (api.h).
--
-- api_keys: one row per key.  The key itself is shown once, when made
-- (`herald apikey create`), and never stored: key_hash is the hex SHA-256
-- of it (a key holds 256 random bits, so a plain hash cannot be searched
-- back; no secret is needed to check one).  prefix is its first 12
-- characters, shown by `apikey ls` so that an operator can tell keys
-- apart.  scopes: the canonical comma list (apikey_scopes_text()).
-- A revoked key keeps its row (revoked_at), so that `apikey ls` shows it
-- and a revoked key is told apart from an unknown one in the log only.
-- last_used_at is written at most once a minute per key.
CREATE TABLE api_keys (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE
	             CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9._-]*'),
	key_hash     TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),
	prefix       TEXT NOT NULL,
	scopes       TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	revoked_at   INTEGER,
	last_used_at INTEGER
);

-- api_requests: what a POST /api/v1/mail with an Idempotency-Key answered,
-- per key and Idempotency-Key, so that a retried request sends nothing
-- twice and gets the same answer.  body_hash: SHA-256 of the request body;
-- the same Idempotency-Key with another body is a 422.  Rows older than
-- a day are removed by the API itself.
CREATE TABLE api_requests (
	api_key_id   INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
	idem_key     TEXT NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
	body_hash    TEXT NOT NULL,
	status       INTEGER NOT NULL,
	response     TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (api_key_id, idem_key)
) WITHOUT ROWID;
CREATE INDEX api_requests_by_time ON api_requests(created_at);
