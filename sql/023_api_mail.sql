-- 023_api_mail.sql - one-off mail sent through the HTTP API (apimail.h).
--
-- api_mails: one row per accepted POST /api/v1/mail, written before the
-- mail is queued and updated with the relay's answer once it went: the
-- ledger of single mails (campaign mail has `deliveries`).  recipient is
-- the address as given; subject the merged subject.  idem_key: the
-- request's Idempotency-Key, unique per API key, so a retried request is
-- answered with the same row and sends nothing twice; body_hash tells a
-- retry from a different request reusing the key (422).  status: queued,
-- sent, deferred (the relays said later: not retried, the caller decides),
-- failed (refused).  A removed key keeps its mails (api_key_id NULL).
-- The rows name a person: `sub export-data` lists them ("mails") and
-- `sub forget` deletes them (privacy.h).
CREATE TABLE api_mails (
	id          INTEGER PRIMARY KEY,
	api_key_id  INTEGER REFERENCES api_keys(id) ON DELETE SET NULL,
	idem_key    TEXT CHECK (idem_key IS NULL OR length(idem_key) BETWEEN 1 AND 255),
	body_hash   TEXT NOT NULL,
	recipient   TEXT NOT NULL,
	recipient_key TEXT NOT NULL,   -- address.h's identity key: export, erasure
	subject     TEXT NOT NULL,
	status      TEXT NOT NULL DEFAULT 'queued'
	            CHECK (status IN ('queued', 'sent', 'deferred', 'failed')),
	smtp_code   INTEGER,
	smtp_reply  TEXT,
	relay       TEXT,
	message_id  TEXT,
	created_at  INTEGER NOT NULL,
	sent_at     INTEGER
);
CREATE UNIQUE INDEX api_mails_idempotent ON api_mails(api_key_id, idem_key)
	WHERE idem_key IS NOT NULL;
CREATE INDEX api_mails_by_recipient ON api_mails(recipient_key);

-- The Idempotency-Key lives with the mail it made (api_mails above): the
-- separate table of 019 is not needed.
DROP TABLE IF EXISTS api_requests;
