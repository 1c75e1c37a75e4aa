-- 011_engagement.sql - what an issue's audience was when its send started
-- (audience.h: audience_record()), for `herald stats`.
--
-- send_audiences: one row per issue whose send has started, written in the
-- transaction that takes the recipient snapshot.  lists: the names of the
-- issue's lists then (a JSON array, in the issue's order); segment: the
-- saved segment's name, and expr its expression as it was (a segment can
-- be edited or removed later), or expr alone for an inline where:, both
-- NULL without a filter.  sunset_after: the [audience] sunset_after span
-- applied, 0 when it was off or did not apply; sunset_skipped: 1 when it
-- was on but the filter targets engagement (an `engaged` term), so nobody
-- was left out for it; unengaged: how many the sunset rule left out
-- (engagement.h (3)), stats' `skipped: unengaged`.
--
-- Issues sent before this table have no row: stats says the definition
-- was not recorded.

CREATE TABLE send_audiences (
	issue_id       INTEGER PRIMARY KEY REFERENCES issues(id) ON DELETE CASCADE,
	lists          TEXT NOT NULL CHECK (json_valid(lists) AND json_type(lists) = 'array'),
	segment        TEXT,
	expr           TEXT,
	sunset_after   INTEGER NOT NULL DEFAULT 0 CHECK (sunset_after >= 0),
	sunset_skipped INTEGER NOT NULL DEFAULT 0 CHECK (sunset_skipped IN (0, 1)),
	unengaged      INTEGER NOT NULL DEFAULT 0 CHECK (unengaged >= 0),
	at             INTEGER NOT NULL
);
