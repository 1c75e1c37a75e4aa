-- 013_consent.sql - consent records: how every subscription came to be,
-- was confirmed and ended, to show on request (UK GDPR Art. 7(1): the
-- controller must be able to demonstrate consent; PECR reg. 22).
--
-- consent_log: one row per change of a subscription's consent, written by
-- consent.c in the same transaction as the change itself (subscriber.c,
-- bouncelog.c through subscriber.c); never updated afterwards except
-- `reason` (the optional "why are you leaving" answer, given after the
-- unsubscribe) and the erasure of a person (ip, user_agent).
--   kind         subscribe | confirm | unsubscribe | reactivate (the
--                address was taken back by an admin; list_id NULL)
--   at           when consent was given or withdrawn: for an import with a
--                consent_at column, the time the other system recorded,
--                else the time of the change
--   recorded_at  when herald wrote the row (differs from `at` only for a
--                dated consent brought in from another system)
--   source       how: web form, cli, import FILE, api, admin, confirmation
--                link, unsubscribe page; for unsubscribes one-click header,
--                page, mailto, complaint, admin; or a consent_source from
--                an import, as given
--   detail       the consent text or list title shown, or what the source
--                said of itself; '' when nothing
--   ip           the client address of a web sign-up or confirmation, as
--                [privacy] store_ip allows (full, truncated to /24 or /48,
--                or NULL); NULL for every other way in
--   user_agent   the browser's User-Agent of the same requests, else NULL
--   reason       why they left, when they said (unsubscribes only)
--
-- ip and user_agent are kept here and nowhere else, so that erasing a
-- person (`sub forget`) has one place to wipe; a removed subscriber takes
-- their rows with them (ON DELETE CASCADE).
--
-- Subscriptions made before this migration get rows with source
-- 'before consent records' at the times the subscriptions table kept, so
-- every subscription has a history, honestly labelled.

CREATE TABLE consent_log (
	id            INTEGER PRIMARY KEY,
	subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	list_id       INTEGER REFERENCES lists(id) ON DELETE CASCADE,
	kind          TEXT NOT NULL
	              CHECK (kind IN ('subscribe', 'confirm', 'unsubscribe', 'reactivate')),
	at            INTEGER NOT NULL,
	recorded_at   INTEGER NOT NULL,
	source        TEXT NOT NULL,
	detail        TEXT NOT NULL DEFAULT '',
	ip            TEXT,
	user_agent    TEXT,
	reason        TEXT
);
CREATE INDEX consent_log_by_subscriber ON consent_log(subscriber_id, list_id, at);

INSERT INTO consent_log (subscriber_id, list_id, kind, at, recorded_at, source)
	SELECT subscriber_id, list_id, 'subscribe', created_at, created_at,
	       'before consent records'
	FROM subscriptions;
INSERT INTO consent_log (subscriber_id, list_id, kind, at, recorded_at, source)
	SELECT subscriber_id, list_id, 'confirm', confirmed_at, confirmed_at,
	       'before consent records'
	FROM subscriptions WHERE confirmed_at IS NOT NULL AND confirmed_at > created_at;
INSERT INTO consent_log (subscriber_id, list_id, kind, at, recorded_at, source)
	SELECT subscriber_id, list_id, 'unsubscribe', unsubscribed_at, unsubscribed_at,
	       'before consent records'
	FROM subscriptions WHERE status = 'unsubscribed' AND unsubscribed_at IS NOT NULL;
