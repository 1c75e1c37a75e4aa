-- 024_sequences.sql - sequences: series of issues, each sent a set time
-- after each subscriber's own start (sequence.h).
--
-- sequences: one row per sequence.  list_id is the list it follows;
-- segment (a saved segment's name) or where_expr (an inline expression)
-- narrows it, both compiled again each time a step falls due.
-- start_from: 'joined' (the subscription's created_at), 'confirmed' (its
-- confirmed_at) or 'attr.KEY' (a date attribute).  status 'paused' adds
-- no deliveries and holds the steps' issues paused.
--
-- sequence_steps: one row per step, each an issue of kind 'welcome' (the
-- per-subscriber kind: no snapshot, rows added one by one, issue.h (6)).
-- delay: seconds after the start, negative for "before" a date attribute;
-- at_local: minutes after local midnight of the send window, NULL for
-- none.  created_at decides who a step added later still reaches.
--
-- sequence_enrolments: one row per subscriber and sequence, ever (a
-- subscriber who left and comes back is not enrolled again).  start_at is
-- their clock's zero, enrolled_at when they entered (for newcomers, the
-- moment they joined), backfill 1 for `--include-existing --backfill`.
-- passed: the delay of the last step given to them or passed over, NULL
-- before the first; a step is theirs only while its delay is greater.
-- The deliveries row of a step is added in the transaction that moves
-- passed, so "one ledger row per subscriber per step" is the deliveries
-- primary key (issue, subscriber) plus this column.
CREATE TABLE sequences (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	list_id     INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
	segment     TEXT,
	where_expr  TEXT,
	start_from  TEXT NOT NULL DEFAULT 'joined'
	            CHECK (start_from IN ('joined', 'confirmed') OR start_from LIKE 'attr.%'),
	status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
	created_at  INTEGER NOT NULL,
	CHECK (segment IS NULL OR where_expr IS NULL)
);

CREATE TABLE sequence_steps (
	sequence_id INTEGER NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
	issue_id    INTEGER NOT NULL UNIQUE REFERENCES issues(id) ON DELETE CASCADE,
	delay       INTEGER NOT NULL,
	at_local    INTEGER CHECK (at_local IS NULL OR at_local BETWEEN 0 AND 1439),
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (sequence_id, delay)
) WITHOUT ROWID;

CREATE TABLE sequence_enrolments (
	sequence_id   INTEGER NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
	subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
	start_at      INTEGER NOT NULL,
	enrolled_at   INTEGER NOT NULL,
	backfill      INTEGER NOT NULL DEFAULT 0,
	state         TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'left')),
	passed        INTEGER,
	left_at       INTEGER,
	left_reason   TEXT,
	PRIMARY KEY (sequence_id, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX sequence_enrolments_due ON sequence_enrolments(sequence_id, state, start_at);
CREATE INDEX sequence_enrolments_by_subscriber ON sequence_enrolments(subscriber_id);
