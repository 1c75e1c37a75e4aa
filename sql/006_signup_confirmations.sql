-- 006_signup_confirmations.sql - who may sign up on the web, and
-- confirmation links that are used once and expire.
--
-- lists.signup: 1 when `herald serve`'s form accepts sign-ups for the list
-- (`herald list create|set NAME --signup`); off by default.  Lists that
-- were public before this migration did take sign-ups, and forms on
-- websites point at them: they keep it.  Lists that were not public never
-- meant to, so they do not.
--
-- confirmations: one row per confirmation mail sent (double opt-in, or a
-- form sign-up of someone who had left, subscriber.h rule 8).  Its id is
-- in the mail's /confirm/TOKEN link (token.h: the issue-id field of a
-- TOKEN_CONFIRM); the link works once (used_at) and until created_at plus
-- [web] confirm_ttl.

ALTER TABLE lists ADD COLUMN signup INTEGER NOT NULL DEFAULT 0 CHECK (signup IN (0, 1));
UPDATE lists SET signup = 1 WHERE public = 1;

CREATE TABLE confirmations (
	id            INTEGER PRIMARY KEY,
	subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	list_id       INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
	created_at    INTEGER NOT NULL,
	used_at       INTEGER
);
CREATE INDEX confirmations_by_subscriber ON confirmations(subscriber_id, list_id);
