/*
 * consent.c - the consent_log table: its one INSERT, the cutting of client
 * addresses ([privacy] store_ip), the leaving reason, and reading the
 * history back (see consent.h for what a record holds, (1)-(6)).
 *
 * Called by subscriber.c inside the transactions that change
 * subscriptions; read by src/cmd/sub.c.  The ip and user_agent columns are
 * the only copy herald keeps of a client's address and browser (erasure
 * wipes them here and nowhere else).
 */
#include "herald/consent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/utf8.h"

int
consent_ip_store(const char *ip, enum config_store_ip mode, char *out, size_t size)
{
	struct in_addr a4;
	struct in6_addr a6;
	char s[INET6_ADDRSTRLEN];
	int v4 = 0;

	out[0] = '\0';
	if (!ip || !*ip || mode == CONFIG_STORE_IP_NO)
		return 0;
	if (inet_pton(AF_INET, ip, &a4) == 1)
		v4 = 1;
	else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		/* a dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d */
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], 4);
			v4 = 1;
		}
	} else {
		/* not an address: kept as given only when kept whole (it came
		 * from a trusted proxy's header, or a caller's own words) */
		if (mode != CONFIG_STORE_IP_YES || strlen(ip) >= size)
			return 0;
		snprintf(out, size, "%s", ip);
		return 1;
	}
	if (mode == CONFIG_STORE_IP_TRUNCATED) {
		if (v4)
			((unsigned char *)&a4)[3] = 0;
		else
			memset(&a6.s6_addr[6], 0, 10);
	}
	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? (const void *)&a4 : (const void *)&a6, s,
	               sizeof s))
		return 0;
	if ((size_t)snprintf(out, size, "%s%s", s, mode == CONFIG_STORE_IP_TRUNCATED ?
	                     (v4 ? "/24" : "/48") : "") >= size) {
		out[0] = '\0';
		return 0;
	}
	return 1;
}

const char *
consent_unsubscribe_how(const char *source)
{
	static const struct {
		const char *event, *how;
	} words[] = {
		{ "one-click", "one-click header" },  /* RFC 8058 POST */
		{ "web", "page" },                    /* the /u/TOKEN page's button */
		{ "cli", "admin" },                   /* herald sub unsubscribe */
	};
	size_t i;

	for (i = 0; i < sizeof words / sizeof words[0]; i++)
		if (!strcmp(source, words[i].event))
			return words[i].how;
	return source;
}

/*
 * A copy of `s` fit to keep: at most `max` bytes, cut at a character
 * boundary; bytes that are not UTF-8 and control characters become '?', so
 * every record reads back as text (JSON needs UTF-8) and prints safely.
 * NULL for NULL; *oom set when out of memory.
 */
static char *
keepable(const char *s, size_t max, int *oom)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, i = 0, len, k;
	char *out;

	if (!s)
		return NULL;
	len = strlen(s);
	if (!(out = malloc((len < max ? len : max) + 1))) {
		*oom = 1;
		return NULL;
	}
	while (*p) {
		/* what is left of s, not strlen(p): that made the loop quadratic */
		n = utf8_seq(p, len - (size_t)(p - (const unsigned char *)s), NULL);
		if (i + (n ? n : 1) > max)
			break;
		if (!n || *p < 0x20 || *p == 0x7f) {
			out[i++] = '?';
			p++;
			continue;
		}
		for (k = 0; k < n; k++)
			out[i++] = (char)p[k];
		p += n;
	}
	out[i] = '\0';
	return out;
}

int
consent_record(sqlite3 *db, const char *kind, long long subscriber_id, long long list_id,
               const struct consent_ctx *c, const char *why, struct herr *err)
{
	return consent_record_cached(db, NULL, kind, subscriber_id, list_id, c, why, err);
}

int
consent_record_cached(sqlite3 *db, sqlite3_stmt **cache, const char *kind,
                      long long subscriber_id, long long list_id, const struct consent_ctx *c,
                      const char *why, struct herr *err)
{
	sqlite3_stmt *st;
	char ip[CONSENT_IP_MAX];
	char *source, *text, *ua, *reason;
	long long now = db_now();
	int rc, oom = 0, ret = -1;

	source = keepable(c->source ? c->source : "unknown", CONSENT_SOURCE_MAX, &oom);
	text = keepable(c->text ? c->text : "", CONSENT_TEXT_MAX, &oom);
	ua = keepable(c->user_agent, CONSENT_UA_MAX, &oom);
	reason = keepable(why, CONSENT_REASON_MAX, &oom);
	if (oom) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	/* (5): the one place an address is cut to what [privacy] allows */
	if (!consent_ip_store(c->ip, c->store_ip, ip, sizeof ip))
		ip[0] = '\0';
	if (db_prepare_cached(db, cache, &st,
	                      "INSERT INTO consent_log (subscriber_id, list_id, kind, at, "
	                      "recorded_at, source, detail, ip, user_agent, reason) "
	                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", err) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, subscriber_id);
	if (list_id)
		sqlite3_bind_int64(st, 2, list_id);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, c->at > 0 ? c->at : now);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_text(st, 6, source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, text, -1, SQLITE_STATIC);
	if (ip[0])
		sqlite3_bind_text(st, 8, ip, -1, SQLITE_STATIC);
	if (ua && *ua)
		sqlite3_bind_text(st, 9, ua, -1, SQLITE_STATIC);
	if (reason && *reason)
		sqlite3_bind_text(st, 10, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		db_error(db, err, "record consent");
	db_stmt_done(cache, st);
	if (rc != SQLITE_DONE)
		goto out;
	ret = 0;
out:
	free(source);
	free(text);
	free(ua);
	free(reason);
	return ret;
}

int
consent_set_reason(sqlite3 *db, long long subscriber_id, long long list_id, const char *reason,
                   struct herr *err)
{
	sqlite3_stmt *st;
	const unsigned char *p;
	char *kept;
	int rc, oom = 0;
	long long id = 0;

	for (p = (const unsigned char *)reason; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return herr_set(err, EX_DATAERR, NULL, "the reason contains a control character");
	if (db_prepare(db, &st, "SELECT id, reason IS NULL FROM consent_log WHERE subscriber_id = ?1 "
	               "AND list_id = ?2 AND kind = 'unsubscribe' ORDER BY at DESC, id DESC "
	               "LIMIT 1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_int64(st, 2, list_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int(st, 1))
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no unsubscribe to give a reason for");
	if (rc != SQLITE_ROW)
		return db_error(db, err, "find the unsubscribe");
	if (!id || !*reason)
		return 0; /* answered already: the first answer stands */
	if (!(kept = keepable(reason, CONSENT_REASON_MAX, &oom)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (db_prepare(db, &st, "UPDATE consent_log SET reason = ?2 WHERE id = ?1", err) < 0) {
		free(kept);
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, kept, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(kept);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record the reason");
	return 0;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int
consent_each(sqlite3 *db, long long subscriber_id,
             int (*fn)(void *ctx, const struct consent_entry *e), void *ctx, struct herr *err)
{
	struct consent_entry e;
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st,
	               "SELECT c.id, ifnull(c.list_id, 0), ifnull(l.name, ''), c.kind, c.source, "
	               "c.detail, c.ip, c.user_agent, c.reason, c.at, c.recorded_at "
	               "FROM consent_log c LEFT JOIN lists l ON l.id = c.list_id "
	               "WHERE c.subscriber_id = ?1 ORDER BY c.at, c.id", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e.id = sqlite3_column_int64(st, 0);
		e.list_id = sqlite3_column_int64(st, 1);
		e.list_name = col_text(st, 2);
		e.kind = col_text(st, 3);
		e.source = col_text(st, 4);
		e.detail = col_text(st, 5);
		e.ip = col_text(st, 6);
		e.user_agent = col_text(st, 7);
		e.reason = col_text(st, 8);
		e.at = sqlite3_column_int64(st, 9);
		e.recorded_at = sqlite3_column_int64(st, 10);
		if (!e.list_name || !e.kind || !e.source || !e.detail) {
			sqlite3_finalize(st);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		if (fn(ctx, &e) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "read consent records");
	return 0;
}

struct consent_reader {
	sqlite3      *db;
	sqlite3_stmt *latest;
};

int
consent_reader_open(sqlite3 *db, struct consent_reader **out, struct herr *err)
{
	struct consent_reader *r = calloc(1, sizeof *r);

	*out = NULL;
	if (!r)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	r->db = db;
	if (db_prepare(db, &r->latest,
	               "SELECT at, source FROM consent_log WHERE subscriber_id = ?2 AND "
	               "list_id = ?1 AND kind = 'subscribe' ORDER BY at DESC, id DESC LIMIT 1",
	               err) < 0) {
		free(r);
		return -1;
	}
	*out = r;
	return 0;
}

int
consent_reader_latest(struct consent_reader *r, long long list_id, long long subscriber_id,
                      long long *at, char *source, size_t size, struct herr *err)
{
	int rc;

	*at = 0;
	source[0] = '\0';
	sqlite3_bind_int64(r->latest, 1, list_id);
	sqlite3_bind_int64(r->latest, 2, subscriber_id);
	rc = sqlite3_step(r->latest);
	if (rc == SQLITE_ROW) {
		*at = sqlite3_column_int64(r->latest, 0);
		snprintf(source, size, "%s", col_text(r->latest, 1) ? col_text(r->latest, 1) : "");
	}
	sqlite3_reset(r->latest);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(r->db, err, "read consent");
	return 0;
}

void
consent_reader_close(struct consent_reader *r)
{
	if (!r)
		return;
	sqlite3_finalize(r->latest);
	free(r);
}
