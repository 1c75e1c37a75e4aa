-- 018_consent_text.sql - the words a reader agrees to when signing up.
--
-- lists.consent_text: what the list's sign-up form shows beside its
-- button ("I agree to receive the monthly newsletter; I can leave at any
-- time"), set by `herald list create|set --consent-text`.  A web sign-up
-- records it in consent_log.detail (consent.h (4)) so that the record
-- proves what the person saw; '' means none was set, and the list title
-- is recorded instead, as before this migration.  The hosted form
-- (GET /subscribe/NAME) and `herald list form` print it.
ALTER TABLE lists ADD COLUMN consent_text TEXT NOT NULL DEFAULT ''
	CHECK (length(CAST(consent_text AS BLOB)) <= 1000);
