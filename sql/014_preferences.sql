-- 014_preferences.sql - the answers to "Why are you leaving?", the optional
-- question after an unsubscribe on the web (the /u page, the preference
-- centre /p): src/prefs.c writes and counts them, `herald stats` and
-- `herald list show` show the counts.
--
-- One row in leave_answers per answer: the fixed reason, the short text of
-- "other", and the issue whose mail carried the link (stats counts the
-- answers per issue).  leave_answer_lists names the lists the answer is
-- about: those the reader had left (subscriptions.unsubscribed_at, kept
-- as left_at) shortly before answering (prefs.h); `list show` counts the
-- answers per list.  A second answer about the same leaving replaces the
-- first, so an answer counts once.  The survey is kept apart from the
-- consent records (013): leaving never waits for it, and it is about
-- opinion, not consent.  Removing a subscriber keeps their answers'
-- counts (subscriber_id becomes NULL); the note is free text the reader
-- wrote, so erasing a person should clear it too.
CREATE TABLE leave_answers (
	id            INTEGER PRIMARY KEY,
	subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE SET NULL,
	issue_id      INTEGER REFERENCES issues(id) ON DELETE SET NULL,
	reason        TEXT NOT NULL
	              CHECK (reason IN ('too_many', 'not_relevant', 'never_signed_up', 'other')),
	note          TEXT NOT NULL DEFAULT '' CHECK (length(CAST(note AS BLOB)) <= 300),
	answered_at   INTEGER NOT NULL
);
CREATE INDEX leave_answers_by_subscriber ON leave_answers(subscriber_id);
CREATE INDEX leave_answers_by_issue ON leave_answers(issue_id, reason);

CREATE TABLE leave_answer_lists (
	answer_id INTEGER NOT NULL REFERENCES leave_answers(id) ON DELETE CASCADE,
	list_id   INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
	left_at   INTEGER NOT NULL,
	PRIMARY KEY (answer_id, list_id)
) WITHOUT ROWID;
CREATE INDEX leave_answer_lists_by_list ON leave_answer_lists(list_id);
