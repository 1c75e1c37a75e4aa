-- 009_issue_audience.sql - an issue's audience: several lists, and a
-- filter over their subscribers (audience.h, issue.h).
--
-- issue_lists: the lists an issue goes to, in the order the front matter
-- (`lists: [newsletter, research]`) or the repeated --list gave them.  The
-- audience is the union of their confirmed subscribers, each person once.
-- Position 0 is always issues.list_id: the trigger below adds it when an
-- issue is inserted, so every issue has its first list here however it was
-- made, and the code that knows one list per issue (the unsubscribe link,
-- the footer, the archive) keeps working with the first.  issue.c adds the
-- others, positions 1, 2, ...  A list in use by an issue cannot be deleted
-- under it (RESTRICT): `list rm --force` removes its issues first.
--
-- issues.segment: the name of a saved segment (segments.name) that filters
-- the audience, evaluated again when the send starts; issues.audience_where:
-- an inline expression (segment.h's language), likewise.  At most one of
-- the two; NULL when the issue goes to everyone on its lists.  The segment
-- is kept by name without a foreign key: segments are WITHOUT ROWID and
-- renamed by removing, and a segment removed under an unsent issue must
-- stop the send (segment_compile_saved fails), never widen it.
--
-- Existing issues get their one list at position 0 and no filter: what
-- they meant before.

CREATE TABLE issue_lists (
	issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
	list_id  INTEGER NOT NULL REFERENCES lists(id) ON DELETE RESTRICT,
	position INTEGER NOT NULL CHECK (position >= 0),
	PRIMARY KEY (issue_id, list_id),
	UNIQUE (issue_id, position)
) WITHOUT ROWID;
CREATE INDEX issue_lists_by_list ON issue_lists(list_id);

INSERT INTO issue_lists (issue_id, list_id, position) SELECT id, list_id, 0 FROM issues;

CREATE TRIGGER issue_lists_first AFTER INSERT ON issues
BEGIN
	INSERT INTO issue_lists (issue_id, list_id, position) VALUES (new.id, new.list_id, 0);
END;

ALTER TABLE issues ADD COLUMN segment TEXT
	CHECK (segment IS NULL OR (length(segment) BETWEEN 1 AND 64
	                           AND segment NOT GLOB '*[^a-z0-9._-]*'));
ALTER TABLE issues ADD COLUMN audience_where TEXT
	CHECK (audience_where IS NULL OR
	       (length(CAST(audience_where AS BLOB)) BETWEEN 1 AND 4096 AND segment IS NULL));
