-- 010_subject_tests.sql - subject-line tests (subjecttest.h).
--
-- issue_variants: the subjects an issue tests (front matter
-- `subject_variants:`), 1-based idx in the order written, 2 to 5 of them.
-- An issue without rows here has no test and goes out as before.
--
-- issues.test_share: the percentage of the audience (1-50) that gets the
-- variants; issues.test_wait: seconds after the test groups have been sent
-- before the winner is picked.  Both NULL when there is no test.
-- issues.test_state: NULL (no test), 'testing' (from `issue new` until the
-- winner is recorded) or 'decided'; test_done_at: when the test groups had
-- all been attempted (recorded once, the wait counts from it);
-- test_winner, test_decided_at, test_why: the winner, when, and the one line
-- saying why; set once, together, by the move testing -> decided.
--
-- deliveries.variant: NULL for a delivery of an issue without a test; 1..5
-- for a recipient in that variant's test group; 0 for the holdout, who is
-- not sent anything before test_winner is set and then gets the winner's
-- subject (ledger.h (7)).  Set in the transaction that takes the snapshot.

CREATE TABLE issue_variants (
	issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
	idx      INTEGER NOT NULL CHECK (idx BETWEEN 1 AND 5),
	subject  TEXT NOT NULL CHECK (length(subject) >= 1),
	PRIMARY KEY (issue_id, idx)
) WITHOUT ROWID;

ALTER TABLE issues ADD COLUMN test_share INTEGER
	CHECK (test_share IS NULL OR test_share BETWEEN 1 AND 50);
ALTER TABLE issues ADD COLUMN test_wait INTEGER
	CHECK (test_wait IS NULL OR test_wait >= 0);
ALTER TABLE issues ADD COLUMN test_state TEXT
	CHECK (test_state IS NULL OR test_state IN ('testing', 'decided'));
ALTER TABLE issues ADD COLUMN test_done_at INTEGER;
ALTER TABLE issues ADD COLUMN test_winner INTEGER
	CHECK (test_winner IS NULL OR test_winner BETWEEN 1 AND 5);
ALTER TABLE issues ADD COLUMN test_decided_at INTEGER;
ALTER TABLE issues ADD COLUMN test_why TEXT;

ALTER TABLE deliveries ADD COLUMN variant INTEGER
	CHECK (variant IS NULL OR variant BETWEEN 0 AND 5);
