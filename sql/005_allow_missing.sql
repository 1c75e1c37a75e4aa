-- 005_allow_missing.sql - merge fields an issue may leave blank.
--
-- issues.allow_missing: a JSON array of field names ("attr.organization",
-- "name") from the front matter's `allow_missing:`.  Before a send, herald
-- refuses an issue whose merge field without a fallback no recipient has
-- (a misspelt {{attr.organization}} for a CSV column "organisation");
-- a field listed here is sent blank instead, on purpose.

ALTER TABLE issues ADD COLUMN allow_missing TEXT NOT NULL DEFAULT '[]'
	CHECK (json_valid(allow_missing) AND json_type(allow_missing) = 'array');
