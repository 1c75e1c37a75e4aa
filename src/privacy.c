/*
 * privacy.c - a person's data on request: the export and the erasure
 * (see privacy.h for the JSON schema and invariants (1)-(5)).
 *
 * Owns the tables erased, erasures and erase_requests, and the two lists
 * below that say where a person is: sections[] (what the export reads)
 * and redactions[] (the texts the erasure scrubs).  A new table or
 * column that can name a person belongs in both.  The rows themselves
 * belong to their modules (ledger.c, eventlog.c, bouncelog.c, ...); only
 * an erasure writes them from here, once, in one transaction.
 *
 * Tables added by other migrations (consent_log, leave_answers) are used
 * when the database has them, so this file works across their arrival.
 */
#include "herald/privacy.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/db.h"
#include "herald/ledger.h"
#include "herald/message.h"
#include "herald/mime.h"
#include "herald/subscriber.h"
#include "herald/tmpl.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The keyed hash of an identity key: HMAC-SHA256 with the token secret,
 * so that the hash list is no list of addresses to anyone without the
 * secret (an unkeyed hash of an address is found by hashing guesses). */
static int
erased_hash(const struct token_key *key, const char *addr_key, char out[65], struct herr *err)
{
	unsigned char mac[TOKEN_HMAC_LEN];

	if (token_hmac(key, addr_key, strlen(addr_key), mac) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot compute the address hash");
	hex(mac, 32, out);
	return 0;
}

/* SHA-256 of an erase link's code: the database keeps this, not the code. */
static int
code_hash(const char *code, char out[65], struct herr *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(code, strlen(code), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot hash the link code");
	hex(md, 32, out);
	return 0;
}

static int
table_exists(sqlite3 *db, const char *name, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
	               err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_error(db, err, "look up a table");
}

/* A copy of `s` with every occurrence of `needle` (ASCII letters compared
 * regardless of case) replaced by PRIVACY_REDACTED; NULL when out of
 * memory.  *n counts the replacements. */
static char *
replace_ci(const char *s, const char *needle, int *n)
{
	size_t nl = strlen(needle), rl = strlen(PRIVACY_REDACTED);
	struct buf b = BUF_INIT((size_t)-1 / 2);
	const char *p = s;

	if (!nl)
		return strdup(s);
	while (*p) {
		if (!strncasecmp(p, needle, nl)) {
			if (buf_add(&b, PRIVACY_REDACTED, rl) < 0)
				goto oom;
			p += nl;
			(*n)++;
		} else if (buf_addc(&b, *p++) < 0)
			goto oom;
	}
	return buf_detach(&b);
oom:
	buf_free(&b);
	return NULL;
}

/* SQL herald_redact(TEXT, KEY, ADDR): TEXT with the identity key KEY (any
 * case) and the address as stored ADDR (which may hold a U-label domain)
 * replaced by "[erased]".  Registered on the erasing connection only. */
static void
sql_redact(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *s = (const char *)sqlite3_value_text(argv[0]);
	const char *k = (const char *)sqlite3_value_text(argv[1]);
	const char *a = (const char *)sqlite3_value_text(argv[2]);
	char *one, *two;
	int n = 0;

	(void)argc;
	if (!s) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	if (!(one = replace_ci(s, k ? k : "", &n)) ||
	    !(two = replace_ci(one, a && strcasecmp(a, k ? k : "") ? a : "", &n))) {
		free(one);
		sqlite3_result_error_nomem(ctx);
		return;
	}
	free(one);
	sqlite3_result_text(ctx, two, -1, free);
}

/* ------------------------------------------------------------------ */
/* Export                                                             */
/* ------------------------------------------------------------------ */

/*
 * Where a person is, for the export.  ?1 is the subscriber id (0: none,
 * matching nothing), ?2 the identity key.  Columns become keys by their
 * names; a name ending in "$json" is JSON text, parsed and given the key
 * without the suffix.  `table`: the section reads a table another
 * migration adds, and is [] where the database does not have it.
 */
static const struct section {
	const char *key;
	const char *table;
	const char *sql;
} sections[] = {
	{ "subscriptions", NULL,
	  "SELECT l.name AS list, l.title AS list_title, s.status, s.created_at, "
	  "s.confirmed_at, s.unsubscribed_at FROM subscriptions s JOIN lists l ON l.id = s.list_id "
	  "WHERE s.subscriber_id = ?1 ORDER BY l.name" },
	{ "consent", "consent_log", NULL }, /* privacy_consent_rows() */
	{ "confirmations", NULL,
	  "SELECT l.name AS list, c.created_at, c.used_at FROM confirmations c "
	  "JOIN lists l ON l.id = c.list_id WHERE c.subscriber_id = ?1 ORDER BY c.id" },
	{ "deliveries", NULL,
	  "SELECT d.issue_id AS issue, i.subject, d.status, d.attempts, d.message_id, d.smtp_code, "
	  "d.smtp_reply, d.relay, d.created_at, d.sent_at, d.updated_at FROM deliveries d "
	  "JOIN issues i ON i.id = d.issue_id WHERE d.subscriber_id = ?1 "
	  "ORDER BY d.created_at, d.issue_id" },
	{ "opens", NULL,
	  "SELECT issue_id AS issue, at, json_extract(detail, '$.ua') AS ua, "
	  "json_extract(detail, '$.agent') AS agent FROM events "
	  "WHERE subscriber_id = ?1 AND kind = 'open' ORDER BY at, id" },
	{ "clicks", NULL,
	  "SELECT e.issue_id AS issue, e.at, json_extract(e.detail, '$.n') AS link, "
	  "(SELECT json_extract(i.links, '$[' || (json_extract(e.detail, '$.n') - 1) || ']') "
	  " FROM issues i WHERE i.id = e.issue_id) AS url, "
	  "json_extract(e.detail, '$.ua') AS ua, json_extract(e.detail, '$.agent') AS agent "
	  "FROM events e WHERE e.subscriber_id = ?1 AND e.kind = 'click' ORDER BY e.at, e.id" },
	{ "events", NULL,
	  "SELECT e.kind, e.issue_id AS issue, l.name AS list, e.at, e.detail AS \"detail$json\" "
	  "FROM events e LEFT JOIN lists l ON l.id = e.list_id "
	  "WHERE e.subscriber_id = ?1 AND e.kind NOT IN ('open', 'click') ORDER BY e.at, e.id" },
	{ "bounces", NULL,
	  "SELECT issue_id AS issue, at, recipient, source, class, reason, status, reply_code, "
	  "diagnostic, remote_mta, why FROM bounces "
	  "WHERE subscriber_id = ?1 OR lower(recipient) = ?2 ORDER BY at, id" },
	{ "suppressions", NULL,
	  "SELECT pattern, reason, note, created_at FROM suppressions "
	  "WHERE pattern IN (?2, substr(?2, instr(?2, '@'))) ORDER BY pattern" },
	{ "leave_answers", "leave_answers",
	  "SELECT issue_id AS issue, reason, note, answered_at FROM leave_answers "
	  "WHERE subscriber_id = ?1 ORDER BY answered_at, id" },
	{ "mails", "api_mails",
	  "SELECT id, subject, status, smtp_code, smtp_reply, relay, message_id, created_at, "
	  "sent_at FROM api_mails WHERE recipient_key = ?2 ORDER BY id" },
	{ "sequences", "sequence_enrolments",
	  "SELECT q.name AS sequence, e.start_at, e.enrolled_at, e.state, e.passed, e.left_at, "
	  "e.left_reason FROM sequence_enrolments e JOIN sequences q ON q.id = e.sequence_id "
	  "WHERE e.subscriber_id = ?1 ORDER BY q.name" },
};

/* One column's value as JSON (NULL when out of memory). */
static json_t *
column_json(sqlite3_stmt *st, int i, int parse)
{
	const char *text;
	json_t *j;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		return json_null();
	case SQLITE_INTEGER:
		return json_integer((json_int_t)sqlite3_column_int64(st, i));
	case SQLITE_FLOAT:
		return json_real(sqlite3_column_double(st, i));
	default:
		text = (const char *)sqlite3_column_text(st, i);
		if (parse && text && (j = json_loads(text, 0, NULL)))
			return j;
		return json_string(text ? text : "");
	}
}

/* Append each row of `st` (bound, not yet stepped) to `arr` as an object;
 * the ids that only link rows (id, subscriber_id, list_id) are left out. */
static int
rows_json(sqlite3 *db, sqlite3_stmt *st, json_t *arr, const char *what, struct herr *err)
{
	char name[64], *dollar;
	json_t *o, *v;
	int i, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(o = json_object()) || json_array_append_new(arr, o) < 0)
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		for (i = 0; i < sqlite3_column_count(st); i++) {
			snprintf(name, sizeof name, "%s", sqlite3_column_name(st, i));
			if (!strcmp(name, "id") || !strcmp(name, "subscriber_id") ||
			    !strcmp(name, "list_id"))
				continue;
			if ((dollar = strstr(name, "$json")))
				*dollar = '\0';
			if (!(v = column_json(st, i, dollar != NULL)) || json_object_set_new(o, name, v) < 0)
				return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
	}
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	return 0;
}

int
privacy_consent_rows(sqlite3 *db, long long subscriber_id, json_t **out, struct herr *err)
{
	sqlite3_stmt *st;
	int have, rc;

	if (!(*out = json_array()))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if ((have = table_exists(db, "consent_log", err)) <= 0) {
		if (have == 0)
			return 0;
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	/* c.* : every column the consent records have, whatever later
	 * migrations add to them; the ids are dropped by rows_json() */
	if (db_prepare(db, &st, "SELECT l.name AS list, c.* FROM consent_log c "
	               "LEFT JOIN lists l ON l.id = c.list_id WHERE c.subscriber_id = ?1 "
	               "ORDER BY c.at, c.id", err) < 0) {
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	sqlite3_bind_int64(st, 1, subscriber_id);
	rc = rows_json(db, st, *out, "read consent records", err);
	sqlite3_finalize(st);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

/* The export of subscriber `sid` (0: none) and identity key `key`, in the
 * caller's read transaction. */
static int
export_in(sqlite3 *db, long long sid, const char *given, const char *key, long long now,
          json_t **out, struct herr *err)
{
	json_t *doc, *arr, *sub = NULL;
	sqlite3_stmt *st;
	size_t i, found = 0;
	int have, rc;

	*out = NULL;
	if (!(doc = json_pack("{s:s, s:i, s:I, s:s}", "schema", PRIVACY_SCHEMA, "schema_version",
	                      PRIVACY_SCHEMA_VERSION, "exported_at", (json_int_t)now,
	                      "address", given)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (sid) {
		if (db_prepare(db, &st, "SELECT id, email, name, status, attributes AS "
		               "\"attributes$json\", created_at, updated_at FROM subscribers "
		               "WHERE id = ?1", err) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, sid);
		arr = json_array();
		rc = arr ? rows_json(db, st, arr, "read the subscriber", err)
		         : herr_set(err, EX_OSERR, NULL, "out of memory");
		sqlite3_finalize(st);
		if (rc < 0 || !(sub = json_incref(json_array_get(arr, 0)))) {
			json_decref(arr);
			if (rc == 0)
				herr_set(err, EX_NOINPUT, NULL, "no subscriber with id %lld", sid);
			goto fail;
		}
		json_decref(arr);
		/* rows_json() leaves ids out; this one is the person's own */
		if (json_object_set_new(sub, "id", json_integer((json_int_t)sid)) < 0) {
			json_decref(sub);
			goto oom;
		}
	}
	if (json_object_set_new(doc, "subscriber", sub ? sub : json_null()) < 0)
		goto oom;
	for (i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		const struct section *x = &sections[i];

		if (!x->sql) {
			if (privacy_consent_rows(db, sid, &arr, err) < 0)
				goto fail;
		} else {
			if (!(arr = json_array()))
				goto oom;
			if (x->table && (have = table_exists(db, x->table, err)) <= 0) {
				if (have < 0) {
					json_decref(arr);
					goto fail;
				}
			} else {
				if (db_prepare(db, &st, x->sql, err) < 0) {
					json_decref(arr);
					goto fail;
				}
				sqlite3_bind_int64(st, 1, sid);
				if (sqlite3_bind_parameter_count(st) >= 2)
					sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
				rc = rows_json(db, st, arr, x->key, err);
				sqlite3_finalize(st);
				if (rc < 0) {
					json_decref(arr);
					goto fail;
				}
			}
		}
		found += json_array_size(arr);
		if (json_object_set_new(doc, x->key, arr) < 0)
			goto oom;
	}
	if (!sid && !found) {
		herr_set(err, EX_NOINPUT, given, "herald holds nothing about this address");
		goto fail;
	}
	*out = doc;
	return 0;
oom:
	herr_set(err, EX_OSERR, NULL, "out of memory");
fail:
	json_decref(doc);
	return -1;
}

/* The subscriber id of identity key `key` (0: none) and their stored
 * address into `email` (512 bytes). */
static int
find_subscriber(sqlite3 *db, const char *key, long long *sid, char *email, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*sid = 0;
	email[0] = '\0';
	if (db_prepare(db, &st, "SELECT id, email FROM subscribers WHERE email_key = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*sid = sqlite3_column_int64(st, 0);
		snprintf(email, 512, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(db, err, "find subscriber");
}

int
privacy_export(sqlite3 *db, const struct address *a, long long now, json_t **out,
               struct herr *err)
{
	char email[512];
	long long sid;
	int rc;

	*out = NULL;
	/* one read transaction: the document describes one moment */
	if (db_exec(db, "BEGIN", err) < 0)
		return -1;
	rc = find_subscriber(db, a->key, &sid, email, err) < 0
	     ? -1 : export_in(db, sid, a->addr, a->key, now, out, err);
	db_rollback(db);
	return rc;
}

int
privacy_export_id(sqlite3 *db, long long subscriber_id, long long now, json_t **out,
                  struct herr *err)
{
	struct subscriber s;
	struct address a;
	int rc;

	*out = NULL;
	if (db_exec(db, "BEGIN", err) < 0)
		return -1;
	if (subscriber_get_by_id(db, subscriber_id, &s, err) < 0) {
		db_rollback(db);
		return -1;
	}
	rc = address_parse(s.email, &a, err) < 0
	     ? -1 : export_in(db, subscriber_id, s.email, a.key, now, out, err);
	subscriber_clear(&s);
	db_rollback(db);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Erasure                                                            */
/* ------------------------------------------------------------------ */

/*
 * The texts an erasure scrubs wherever they name the address (invariant
 * (3)); `scope`, when set, limits the rows (?3: the tombstone, 0 when
 * none) where the table is large and the person's rows are known.  Table
 * and column names are this file's constants, never input.
 */
static const struct redaction {
	const char *table, *column, *scope;
} redactions[] = {
	{ "deliveries",   "smtp_reply",  "subscriber_id = ?3" },
	{ "events",       "detail",      "(subscriber_id = ?3 OR subscriber_id IS NULL)" },
	{ "bounces",      "recipient",   NULL },
	{ "bounces",      "diagnostic",  NULL },
	{ "bounces",      "why",         NULL },
	{ "inbound",      "orig_to",     NULL },
	{ "inbound",      "envelope_to", NULL },
	{ "inbound",      "summary",     NULL },
	{ "suppressions", "note",        NULL },
};

static int
run(sqlite3 *db, const char *sql, long long a1, long long a2, long long *n, const char *what,
    struct herr *err)
{
	return db_run2(db, sql, a1, a2, n, what, err);
}

/* One statement with text ?1 and integer ?2; *n the rows changed. */
static int
run_text(sqlite3 *db, const char *sql, const char *t1, long long a2, long long *n,
         const char *what, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, a2);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	if (n)
		*n = sqlite3_changes(db);
	return 0;
}

/* Does `hay` hold `needle`, ASCII letters compared regardless of case? */
static int
contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; n && *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return 1;
	return 0;
}

/* Statements with the identity key as ?1, the stored address as ?2 and
 * the tombstone as ?3; *n the rows changed. */
static int
run_texts(sqlite3 *db, const char *sql, const char *key, const char *email, long long tomb,
          long long *n, const char *what, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, tomb);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	if (n)
		*n = sqlite3_changes(db);
	return 0;
}

/* `by` for the log: text, and no mention of whom it erased. */
static int
check_by(const char *by, const struct address *a, const char *email, const char *name,
         struct herr *err)
{
	if (!by || !*by)
		return herr_set(err, EX_USAGE, NULL, "the erasure log needs to say who erased (--by)");
	if (subscriber_check_text("the --by text", by, PRIVACY_BY_MAX, err) < 0)
		return -1;
	if (contains_ci(by, a->key) || contains_ci(by, a->addr) || contains_ci(by, email) ||
	    (strlen(name) >= 3 && contains_ci(by, name)))
		return herr_set(err, EX_DATAERR, NULL, "the --by text names the person; the erasure "
		                "log says who erased, never whom");
	return 0;
}

/* The erasure itself, in the caller's transaction (invariants (1)-(5)). */
static int
forget_in(sqlite3 *db, const struct token_key *key, const struct address *a, const char *by,
          long long now, struct privacy_forget_result *res, struct herr *err)
{
	char email[512], name[SUBSCRIBER_NAME_MAX + 1] = "", hash[65], sql[512];
	long long sid, tomb = 0, n, keep = 0;
	sqlite3_stmt *st;
	size_t i;
	int rc, have;

	memset(res, 0, sizeof *res);
	if (find_subscriber(db, a->key, &sid, email, err) < 0)
		return -1;
	if (!email[0])
		snprintf(email, sizeof email, "%s", a->addr);
	if (sid) {
		if (db_prepare(db, &st, "SELECT name, EXISTS (SELECT 1 FROM deliveries WHERE "
		               "subscriber_id = ?1) OR EXISTS (SELECT 1 FROM events WHERE "
		               "subscriber_id = ?1) OR EXISTS (SELECT 1 FROM bounces WHERE "
		               "subscriber_id = ?1) FROM subscribers WHERE id = ?1", err) < 0)
			return -1;
		sqlite3_bind_int64(st, 1, sid);
		if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 0));
			keep = sqlite3_column_int(st, 1);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW)
			return db_error(db, err, "read the subscriber");
	}
	if (check_by(by, a, email, name, err) < 0)
		return -1;

	/* (2) the tombstone: what stats count stays, linked to nobody */
	if (keep) {
		if (db_exec(db, "INSERT INTO subscribers (email, email_key, name, attributes, status, "
		            "created_at, updated_at) VALUES ('', 'erased:' || "
		            "lower(hex(randomblob(16))), '', '{}', 'blocklisted', 0, 0)", err) < 0)
			return herr_wrap(err, "make the tombstone");
		tomb = sqlite3_last_insert_rowid(db);
		if (ledger_move_subscriber(db, sid, tomb, &n, err) < 0)
			return -1;
		res->kept += n;
		if (run(db, "UPDATE events SET subscriber_id = ?2, detail = CASE WHEN kind IN "
		        "('open', 'click') THEN json_remove(detail, '$.agent') ELSE detail END "
		        "WHERE subscriber_id = ?1", sid, tomb, &n, "move events", err) < 0)
			return -1;
		res->kept += n;
		if (run(db, "UPDATE bounces SET subscriber_id = ?2 WHERE subscriber_id = ?1",
		        sid, tomb, &n, "move bounces", err) < 0)
			return -1;
		res->kept += n;
	}
	/* the API's one-off mails to the address (apimail.h): records of
	 * single mails that no issue's stats count, so they go whole */
	if ((have = table_exists(db, "api_mails", err)) < 0)
		return -1;
	if (have) {
		if (db_prepare(db, &st, "DELETE FROM api_mails WHERE recipient_key = ?1", err) < 0)
			return -1;
		sqlite3_bind_text(st, 1, a->key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return db_error(db, err, "erase one-off mails");
		res->redacted += sqlite3_changes(db);
	}
	/* (1) the person; their free-text answers first (the row keeps its
	 * reason, counted by stats, and loses its link by ON DELETE SET NULL) */
	if (sid) {
		if ((have = table_exists(db, "leave_answers", err)) < 0 ||
		    (have && run(db, "UPDATE leave_answers SET note = '' WHERE subscriber_id = ?1",
		                 sid, 0, NULL, "clear answers", err) < 0))
			return -1;
		/* cascade would take them too; said here so nobody wonders */
		if ((have = table_exists(db, "consent_log", err)) < 0 ||
		    (have && run(db, "DELETE FROM consent_log WHERE subscriber_id = ?1", sid, 0, NULL,
		                 "erase consent records", err) < 0))
			return -1;
		if (run(db, "DELETE FROM subscribers WHERE id = ?1", sid, 0, NULL,
		        "erase the subscriber", err) < 0)
			return -1;
		res->subscriber = 1;
	}
	/* (3) every text that names the address */
	if (sqlite3_create_function_v2(db, "herald_redact", 3,
	                               SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_redact, NULL,
	                               NULL, NULL) != SQLITE_OK)
		return db_error(db, err, "register herald_redact");
	for (i = 0; i < sizeof redactions / sizeof redactions[0]; i++) {
		const struct redaction *r = &redactions[i];

		snprintf(sql, sizeof sql, "UPDATE %s SET %s = herald_redact(%s, ?1, ?2) "
		         "WHERE (instr(lower(%s), ?1) > 0 OR instr(%s, ?2) > 0)%s%s", r->table,
		         r->column, r->column, r->column, r->column, r->scope ? " AND " : "",
		         r->scope ? r->scope : "");
		if (run_texts(db, sql, a->key, email, tomb, &n, "erase the address from texts",
		              err) < 0)
			return herr_wrap(err, "%s.%s", r->table, r->column);
		res->redacted += n;
	}
	/* (4) the address's own suppression becomes its hash's flag */
	if (run_text(db, "DELETE FROM suppressions WHERE pattern = ?1", a->key, 0, &n,
	             "erase the suppression", err) < 0)
		return -1;
	res->suppressed = n > 0;
	if (!sid && !res->suppressed && !res->redacted)
		return herr_set(err, EX_NOINPUT, a->addr, "herald holds nothing about this address");

	/* (5) the hash and the log */
	if (erased_hash(key, a->key, hash, err) < 0 ||
	    db_prepare(db, &st, "INSERT INTO erased (hash, suppressed) VALUES (?1, ?2) "
	               "ON CONFLICT (hash) DO UPDATE SET suppressed = max(suppressed, "
	               "excluded.suppressed)", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, res->suppressed);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record the hash");
	if (db_prepare(db, &st, "INSERT INTO erasures (at, by_whom) VALUES (?1, ?2)", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_text(st, 2, by, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "log the erasure");
	return 0;
}

/* secure_delete on for this connection (the old value in *was): SQLite
 * then overwrites the content it deletes with zeros instead of leaving it
 * in free space, where it would survive in the file. */
static int
secure_on(sqlite3 *db, int *was, struct herr *err)
{
	sqlite3_stmt *st;
	int rc, on = 0;

	*was = 0;
	if (db_prepare(db, &st, "PRAGMA secure_delete", err) < 0)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		*was = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	/* PRAGMA takes no parameters; the values are constants */
	if (db_prepare(db, &st, "PRAGMA secure_delete = ON", err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		on = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW || on != 1)
		return herr_set(err, EX_SOFTWARE, NULL, "this SQLite cannot turn on secure_delete: "
		                "an erasure would leave the deleted bytes in the file");
	return 0;
}

/* After the commit: copy the pages the erasure wrote (and zeroed) from
 * the WAL into the database file and empty the WAL, so that the old
 * pages in neither file still hold what was erased; then secure_delete
 * back as it was. */
static void
secure_off(sqlite3 *db, int was, int *checkpointed)
{
	int nlog = 0, nckpt = 0;

	*checkpointed = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog,
	                                          &nckpt) == SQLITE_OK;
	if (!was)
		sqlite3_exec(db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
}

int
privacy_forget(sqlite3 *db, const struct token_key *key, const struct address *a,
               const char *by, long long now, struct privacy_forget_result *res,
               struct herr *err)
{
	int was;

	memset(res, 0, sizeof *res);
	if (secure_on(db, &was, err) < 0)
		return -1;
	if (db_begin(db, err) < 0)
		goto fail;
	if (forget_in(db, key, a, by, now, res, err) < 0 || db_commit(db, err) < 0) {
		db_rollback(db);
		goto fail;
	}
	secure_off(db, was, &res->checkpointed);
	return 0;
fail:
	if (!was)
		sqlite3_exec(db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
	return -1;
}

int
privacy_erased_check(sqlite3 *db, const struct token_key *key, const char *addr_key,
                     struct herr *err)
{
	return privacy_erased_check_cached(db, NULL, key, addr_key, err);
}

int
privacy_erased_any(sqlite3 *db, struct herr *err)
{
	sqlite3_stmt *st;
	int rc, any = 0;

	if (db_prepare(db, &st, "SELECT EXISTS (SELECT 1 FROM erased)", err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		any = sqlite3_column_int(st, 0) != 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "check erased addresses");
	return any;
}

int
privacy_erased_check_cached(sqlite3 *db, sqlite3_stmt **cache, const struct token_key *key,
                            const char *addr_key, struct herr *err)
{
	sqlite3_stmt *st;
	char hash[65];
	int rc, v = 0;

	if (erased_hash(key, addr_key, hash, err) < 0 ||
	    db_prepare_cached(db, cache, &st, "SELECT suppressed FROM erased WHERE hash = ?1",
	                      err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0) ? 2 : 1;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		db_error(db, err, "check erased addresses");
	db_stmt_done(cache, st);
	return rc != SQLITE_ROW && rc != SQLITE_DONE ? -1 : v;
}

/* ------------------------------------------------------------------ */
/* The reader's own request                                           */
/* ------------------------------------------------------------------ */

int
privacy_request_new(sqlite3 *db, long long subscriber_id, long long now, char *code,
                    struct herr *err)
{
	unsigned char rnd[PRIVACY_CODE_LEN / 2];
	sqlite3_stmt *st;
	char h[65];
	int rc;

	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make the link code");
	hex(rnd, sizeof rnd, code);
	if (code_hash(code, h, err) < 0 ||
	    db_prepare(db, &st, "INSERT INTO erase_requests (subscriber_id, code_hash, created_at) "
	               "VALUES (?1, ?2, ?3)", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_text(st, 2, h, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_error(db, err, "record the erase request");
}

int
privacy_request_state(sqlite3 *db, const char *code, long long now, long ttl,
                      enum privacy_request_state *st_out, long long *subscriber_id,
                      struct herr *err)
{
	sqlite3_stmt *st;
	char h[65];
	int rc;

	*st_out = PRIVACY_REQUEST_UNKNOWN;
	*subscriber_id = 0;
	if (code_hash(code, h, err) < 0 ||
	    db_prepare(db, &st, "SELECT subscriber_id, created_at, used_at FROM erase_requests "
	               "WHERE code_hash = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, h, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*subscriber_id = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 2) != SQLITE_NULL)
			*st_out = PRIVACY_REQUEST_USED;
		else if (now - sqlite3_column_int64(st, 1) > ttl)
			*st_out = PRIVACY_REQUEST_EXPIRED;
		else
			*st_out = PRIVACY_REQUEST_OPEN;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(db, err, "read the erase request");
}

int
privacy_request_use(sqlite3 *db, const struct token_key *key, const char *code, long long now,
                    long ttl, enum privacy_request_state *st, struct privacy_forget_result *res,
                    struct herr *err)
{
	struct subscriber s;
	struct address a;
	long long sid;
	char h[65];
	int was;

	memset(res, 0, sizeof *res);
	if (secure_on(db, &was, err) < 0)
		return -1;
	if (db_begin(db, err) < 0)
		goto fail;
	if (privacy_request_state(db, code, now, ttl, st, &sid, err) < 0)
		goto rollback;
	if (*st != PRIVACY_REQUEST_OPEN) {
		db_rollback(db);
		if (!was)
			sqlite3_exec(db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
		return 0;
	}
	/* used before anything else, so that a failure below cannot leave an
	 * open link behind a half-done erasure (it rolls back together) */
	if (code_hash(code, h, err) < 0 ||
	    run_text(db, "UPDATE erase_requests SET used_at = ?2 WHERE code_hash = ?1", h, now,
	             NULL, "use the erase request", err) < 0)
		goto rollback;
	if (subscriber_get_by_id(db, sid, &s, err) < 0)
		goto rollback;
	if (address_parse(s.email, &a, err) < 0) {
		subscriber_clear(&s);
		goto rollback;
	}
	subscriber_clear(&s);
	if (forget_in(db, key, &a, PRIVACY_BY_WEB, now, res, err) < 0 || db_commit(db, err) < 0)
		goto rollback;
	secure_off(db, was, &res->checkpointed);
	return 0;
rollback:
	db_rollback(db);
fail:
	if (!was)
		sqlite3_exec(db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
	return -1;
}

/* ------------------------------------------------------------------ */
/* The mails                                                          */
/* ------------------------------------------------------------------ */

static const char html_head[] =
	"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
static const char html_body[] =
	"</title></head><body style=\"margin:0;padding:24px;background:#ffffff;color:#1f2933;"
	"font-family:Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;\">";

int
privacy_mail_export(const struct config *cfg, const struct dkim_signer *dkim, const char *email,
                    const char *json, size_t len, long long now, struct buf *out,
                    struct message_out *mo, struct herr *err)
{
	struct buf text = BUF_INIT(MESSAGE_MAX / 4), html = BUF_INIT(MESSAGE_MAX / 4);
	const char *postal = cfg->postal_address ? cfg->postal_address : "";
	int ret = -1;

	buf_reset(out);
	if (address_parse(email, &mo->rcpt, err) < 0)
		return -1;
	if (buf_addf(&text, "Hello,\n\nyou asked for a copy of the data we hold about you (%s).\n"
	             "It follows this paragraph, as one JSON document (schema %s, version %d):\n"
	             "your profile, your subscriptions and their history, the mail we sent you,\n"
	             "and the opens, clicks and bounces we recorded.\n\n", mo->rcpt.addr,
	             PRIVACY_SCHEMA, PRIVACY_SCHEMA_VERSION) < 0 ||
	    buf_add(&text, json, len) < 0 ||
	    buf_addf(&text, "\n\n-- \n%s\n", postal) < 0 ||
	    buf_adds(&html, html_head) < 0 || buf_adds(&html, "Your data") < 0 ||
	    buf_adds(&html, html_body) < 0 ||
	    buf_adds(&html, "<p>Hello,</p><p>you asked for a copy of the data we hold about you (") < 0 ||
	    tmpl_escape_html(&html, mo->rcpt.addr, strlen(mo->rcpt.addr)) < 0 ||
	    buf_addf(&html, "). Here it is, as one JSON document (schema %s, version %d).</p>"
	             "<pre style=\"font-size:13px;white-space:pre-wrap;\">", PRIVACY_SCHEMA,
	             PRIVACY_SCHEMA_VERSION) < 0 ||
	    tmpl_escape_html(&html, json, len) < 0 ||
	    buf_adds(&html, "</pre></body></html>\n") < 0) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	ret = message_build_automatic(cfg, dkim, "privacy", NULL, "Your data, as you asked", buf_str(&text),
	                              text.len, buf_str(&html), html.len, now, out, mo, err);
out:
	buf_free(&text);
	buf_free(&html);
	return ret;
}

int
privacy_mail_erase(const struct config *cfg, const struct dkim_signer *dkim, const char *email,
                   const char *code, long ttl, long long now, struct buf *out,
                   struct message_out *mo, struct herr *err)
{
	struct buf text = BUF_INIT(1u << 16), html = BUF_INIT(1u << 16);
	const char *postal = cfg->postal_address ? cfg->postal_address : "";
	long days = (ttl + 86399) / 86400;
	char url[600];
	int ret = -1;

	buf_reset(out);
	if (address_parse(email, &mo->rcpt, err) < 0)
		return -1;
	snprintf(url, sizeof url, "%s/erase/%s", cfg->base_url, code);
	if (buf_addf(&text, "Hello,\n\nsomeone, we hope you, asked us to delete everything we hold\n"
	             "about %s: the subscriptions, the name, and the history of\nthe mail we "
	             "sent.\n\nTo confirm, open this link and press the button (it works once,\n"
	             "for %ld day%s):\n\n%s\n\nIf it was not you, ignore this mail: nothing will "
	             "be deleted.\n\n-- \n%s\n", mo->rcpt.addr, days, days == 1 ? "" : "s", url,
	             postal) < 0 ||
	    buf_adds(&html, html_head) < 0 || buf_adds(&html, "Confirm the deletion") < 0 ||
	    buf_adds(&html, html_body) < 0 ||
	    buf_adds(&html, "<p>Hello,</p><p>someone, we hope you, asked us to delete everything "
	             "we hold about ") < 0 ||
	    tmpl_escape_html(&html, mo->rcpt.addr, strlen(mo->rcpt.addr)) < 0 ||
	    buf_adds(&html, ": the subscriptions, the name, and the history of the mail we "
	             "sent.</p><p><a href=\"") < 0 ||
	    tmpl_escape_html(&html, url, strlen(url)) < 0 ||
	    buf_addf(&html, "\" style=\"color:#1a56db;\">Confirm the deletion</a> (the link "
	             "works once, for %ld day%s)</p><p>If it was not you, ignore this mail: "
	             "nothing will be deleted.</p></body></html>\n", days, days == 1 ? "" : "s") < 0) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	ret = message_build_automatic(cfg, dkim, "privacy", NULL, "Please confirm: delete your data",
	                              buf_str(&text), text.len, buf_str(&html), html.len, now, out,
	                              mo, err);
out:
	buf_free(&text);
	buf_free(&html);
	return ret;
}
