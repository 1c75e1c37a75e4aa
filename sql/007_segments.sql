-- 007_segments.sql - saved segments (segment.h): a name for a filter over
-- subscribers, e.g. `attr.role = "Social worker" and engaged 180d`.
--
-- Only the expression is kept, never the subscribers it matched: a saved
-- segment is compiled and evaluated again each time it is used, so it
-- always means what the data says now.  The name follows the rule of list
-- names (list.h); the expression is checked by compiling it before it is
-- saved (segment_save), and its length by the CHECK below
-- (SEGMENT_EXPR_MAX, SEGMENT_DESC_MAX).

CREATE TABLE segments (
	name        TEXT PRIMARY KEY
	            CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9._-]*'),
	expr        TEXT NOT NULL CHECK (length(CAST(expr AS BLOB)) BETWEEN 1 AND 4096),
	description TEXT NOT NULL DEFAULT ''
	            CHECK (length(CAST(description AS BLOB)) <= 1024),
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
