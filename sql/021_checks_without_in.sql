-- 021_checks_without_in.sql - the CHECK constraints of the tables written
-- once per subscriber or per message, with the same meaning, written as
-- `=` joined by OR instead of `IN (...)`.
--
-- Why: SQLite 3.40 evaluates a CHECK such as status IN ('a', 'b', 'c') by
-- building a temporary B-tree of the list (OpenEphemeral: a pager opened
-- and closed) every time a row is inserted or the column updated.  A
-- million-row import paid that three times a row (subscribers,
-- subscriptions, consent_log): 28 % of its CPU.  A send pays it for every
-- status change of a delivery, and tracking for every event.  A chain of
-- `=` is a few comparisons.  Two values or fewer (the 0/1 flags) are
-- compared in place already and stay as they are.
--
-- How: the rows on disk do not change, only the CREATE TABLE text SQLite
-- keeps in sqlite_master, which is the documented way to change a
-- constraint without copying a table (https://sqlite.org/lang_altertable.html,
-- "making other kinds of table schema changes": writable_schema, then the
-- new text).  Every row satisfies the new constraint exactly when it
-- satisfied the old (NULL passes both).  Each replace() names the whole
-- old CHECK, so a table whose text differs (rebuilt by a later change)
-- is left as it is.  A connection open during the migration keeps the
-- old text until it reconnects, which is harmless: they mean the same.
PRAGMA writable_schema = ON;

UPDATE sqlite_master SET sql = replace(sql,
	'CHECK (status IN (''active'', ''blocklisted'', ''bounced'', ''complained''))',
	'CHECK (status = ''active'' OR status = ''blocklisted'' OR status = ''bounced'' OR ' ||
	'status = ''complained'')')
WHERE type = 'table' AND name = 'subscribers';

UPDATE sqlite_master SET sql = replace(sql,
	'CHECK (status IN (''unconfirmed'', ''confirmed'', ''unsubscribed''))',
	'CHECK (status = ''unconfirmed'' OR status = ''confirmed'' OR status = ''unsubscribed'')')
WHERE type = 'table' AND name = 'subscriptions';

UPDATE sqlite_master SET sql = replace(sql,
	'CHECK (kind IN (''subscribe'', ''confirm'', ''unsubscribe'', ''reactivate''))',
	'CHECK (kind = ''subscribe'' OR kind = ''confirm'' OR kind = ''unsubscribe'' OR ' ||
	'kind = ''reactivate'')')
WHERE type = 'table' AND name = 'consent_log';

UPDATE sqlite_master SET sql = replace(sql,
	'CHECK (status IN (''pending'', ''sending'', ''sent'', ''deferred'', ''bounced'', ' ||
	'''failed'', ''skipped''))',
	'CHECK (status = ''pending'' OR status = ''sending'' OR status = ''sent'' OR ' ||
	'status = ''deferred'' OR status = ''bounced'' OR status = ''failed'' OR ' ||
	'status = ''skipped'')')
WHERE type = 'table' AND name = 'deliveries';

UPDATE sqlite_master SET sql = replace(sql,
	'CHECK (kind IN (''open'', ''click'', ''bounce'', ''complaint'', ''unsubscribe'', ' ||
	'''subscribe'', ''confirm''))',
	'CHECK (kind = ''open'' OR kind = ''click'' OR kind = ''bounce'' OR ' ||
	'kind = ''complaint'' OR kind = ''unsubscribe'' OR kind = ''subscribe'' OR ' ||
	'kind = ''confirm'')')
WHERE type = 'table' AND name = 'events';

PRAGMA writable_schema = OFF;
