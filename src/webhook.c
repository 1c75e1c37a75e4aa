/*
 * webhook.c - outgoing webhooks (see webhook.h for the request and rules
 * (1)-(3)).
 *
 * Owns the tables webhooks and webhook_outbox (sql/020_webhooks.sql).
 * The outbox is filled by that file's trigger, never here; this file
 * manages the webhooks, delivers the rows with libcurl and keeps their
 * state.  Only loopback or the operator's own URLs are ever contacted: a
 * URL comes from `herald webhook add`, never from a request.
 */
#include "herald/webhook.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/db.h"

static const char *const kinds[] = {
	"subscribe", "confirm", "unsubscribe", "bounce", "complaint", "click", "open",
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

int
webhook_events_parse(const char *text, char *out, size_t size, struct herr *err)
{
	unsigned want = 0;
	const char *p = text, *end;
	size_t n, i, len = 0;

	while (p && *p) {
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		for (i = 0; i < N_KINDS; i++)
			if (strlen(kinds[i]) == n && !strncmp(p, kinds[i], n))
				break;
		if (i == N_KINDS)
			return herr_set(err, EX_USAGE, NULL, "unknown event '%.*s' (events: subscribe, "
			                "confirm, unsubscribe, bounce, complaint, click, open)",
			                (int)(n > 40 ? 40 : n), p);
		want |= 1u << i;
		p = end ? end + 1 : NULL;
	}
	if (!want)
		return herr_set(err, EX_USAGE, NULL, "a webhook needs at least one event");
	out[0] = '\0';
	for (i = 0; i < N_KINDS; i++)
		if (want & (1u << i)) {
			snprintf(out + len, size - len, "%s%s", len ? "," : "", kinds[i]);
			len = strlen(out);
		}
	return 0;
}

int
webhook_add(sqlite3 *db, const char *url, const char *events, const char *secret, char *made,
            long long now, long long *id, struct herr *err)
{
	unsigned char rnd[32];
	sqlite3_stmt *st;
	size_t i;
	int rc;

	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return herr_set(err, EX_DATAERR, NULL, "a webhook URL starts with http:// or "
		                "https://, not '%.80s'", url);
	for (i = 0; url[i]; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			return herr_set(err, EX_DATAERR, NULL, "the URL holds a space or a control "
			                "character");
	if (secret && (strlen(secret) < 16 || strlen(secret) > WEBHOOK_SECRET_MAX))
		return herr_set(err, EX_DATAERR, NULL, "a webhook secret is 16 to %d bytes",
		                WEBHOOK_SECRET_MAX);
	if (!secret) {
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			return herr_set(err, EX_SOFTWARE, NULL, "cannot make a secret");
		for (i = 0; i < sizeof rnd; i++)
			snprintf(made + 2 * i, 3, "%02x", rnd[i]);
		secret = made;
	}
	if (db_prepare(db, &st, "INSERT INTO webhooks (url, events, secret, created_at) "
	               "VALUES (?1, ?2, ?3, ?4)", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, events, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, secret, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "add the webhook");
	*id = sqlite3_last_insert_rowid(db);
	return 0;
}

int
webhook_remove(sqlite3 *db, long long id, struct herr *err)
{
	long long n = 0;

	if (db_run2(db, "DELETE FROM webhooks WHERE id = ?1", id, 0, &n, "remove the webhook",
	            err) < 0)
		return -1;
	return n ? 0 : herr_set(err, EX_NOINPUT, NULL, "no webhook %lld", id);
}

static const char *
col(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? t : "";
}

int
webhook_each(sqlite3 *db, int (*fn)(void *ctx, const struct webhook_info *w), void *ctx,
             struct herr *err)
{
	struct webhook_info w;
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT w.id, w.url, w.events, w.created_at, "
	               "(SELECT count(*) FROM webhook_outbox o WHERE o.webhook_id = w.id AND "
	               "o.status = 'pending'), "
	               "(SELECT count(*) FROM webhook_outbox o WHERE o.webhook_id = w.id AND "
	               "o.status = 'delivered'), "
	               "(SELECT count(*) FROM webhook_outbox o WHERE o.webhook_id = w.id AND "
	               "o.status = 'failed') FROM webhooks w ORDER BY w.id", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		w.id = sqlite3_column_int64(st, 0);
		w.url = col(st, 1);
		w.events = col(st, 2);
		w.created_at = sqlite3_column_int64(st, 3);
		w.pending = sqlite3_column_int64(st, 4);
		w.delivered = sqlite3_column_int64(st, 5);
		w.failed = sqlite3_column_int64(st, 6);
		if (fn(ctx, &w) < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_error(db, err, "read the webhooks");
}

int
webhook_each_failure(sqlite3 *db, int (*fn)(void *ctx, const struct webhook_failure *f),
                     void *ctx, struct herr *err)
{
	struct webhook_failure f;
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT o.id, o.webhook_id, o.event_id, o.created_at, o.attempts, "
	               "w.url, o.kind, ifnull(o.last_error, '') FROM webhook_outbox o JOIN "
	               "webhooks w ON w.id = o.webhook_id WHERE o.status = 'failed' "
	               "ORDER BY o.id", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f.id = sqlite3_column_int64(st, 0);
		f.webhook_id = sqlite3_column_int64(st, 1);
		f.event_id = sqlite3_column_int64(st, 2);
		f.created_at = sqlite3_column_int64(st, 3);
		f.attempts = sqlite3_column_int64(st, 4);
		f.url = col(st, 5);
		f.kind = col(st, 6);
		f.last_error = col(st, 7);
		if (fn(ctx, &f) < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_error(db, err, "read the failures");
}

int
webhook_retry_failed(sqlite3 *db, long long id, long long now, long long *n, struct herr *err)
{
	return db_run2(db, "UPDATE webhook_outbox SET status = 'pending', next_at = ?2, "
	               "created_at = ?2 WHERE status = 'failed' AND (?1 = 0 OR webhook_id = ?1)",
	               id, now, n, "re-queue the failed deliveries", err);
}

int
webhook_sign(const char *secret, long long t, const char *body, size_t len, char *out,
             size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char ts[24], hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned char *data;
	size_t tl;

	/* the signed bytes: "T." then the body, as the receiver rebuilds them */
	tl = (size_t)snprintf(ts, sizeof ts, "%lld.", t);
	if (!(data = malloc(tl + len + 1)))
		return -1;
	memcpy(data, ts, tl);
	memcpy(data + tl, body, len);
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), data, tl + len, md, &mdlen)) {
		free(data);
		return -1;
	}
	free(data);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return snprintf(out, size, "t=%lld,v1=%s", t, hex) < (int)size ? 0 : -1;
}

/* ---- delivery ---- */

static size_t
discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

/* POST one row; 0 when the receiver said 2xx, else -1 with why in `why`. */
static int
post(CURL *curl, const char *url, const char *secret, long long id, const char *kind,
     const char *body, char *why, size_t why_size)
{
	struct curl_slist *h = NULL, *grown;
	char sig[160], line[256];
	long status = 0;
	CURLcode rc;
	const char *lines[5];
	size_t i;

	if (webhook_sign(secret, (long long)time(NULL), body, strlen(body), sig, sizeof sig) < 0) {
		snprintf(why, why_size, "cannot sign");
		return -1;
	}
	lines[0] = "Content-Type: application/json";
	lines[1] = "User-Agent: herald/" HERALD_VERSION;
	lines[2] = "Expect:";   /* no 100-continue round trip */
	for (i = 0; i < 3; i++) {
		if (!(grown = curl_slist_append(h, lines[i])))
			goto oom;
		h = grown;
	}
	snprintf(line, sizeof line, "Herald-Event: %s", kind);
	if (!(grown = curl_slist_append(h, line)))
		goto oom;
	h = grown;
	snprintf(line, sizeof line, "Herald-Delivery: %lld", id);
	if (!(grown = curl_slist_append(h, line)))
		goto oom;
	h = grown;
	snprintf(line, sizeof line, "Herald-Signature: %s", sig);
	if (!(grown = curl_slist_append(h, line)))
		goto oom;
	h = grown;
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, WEBHOOK_TIMEOUT);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(curl);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		snprintf(why, why_size, "%s", curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		snprintf(why, why_size, "HTTP %ld", status);
		return -1;
	}
	return 0;
oom:
	curl_slist_free_all(h);
	snprintf(why, why_size, "out of memory");
	return -1;
}

/* When to try a row next after `attempts` failures (rule (1)). */
static long long
next_try(const struct config *cfg, long long now, long long attempts)
{
	size_t i = (size_t)(attempts > 0 ? attempts - 1 : 0);

	if (!cfg->n_webhook_retry)
		return now + 60;
	if (i >= cfg->n_webhook_retry)
		i = cfg->n_webhook_retry - 1;
	return now + cfg->webhook_retry[i];
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
webhook_deliver_due(sqlite3 *db, const struct config *cfg, volatile sig_atomic_t *stop,
                    double deadline, struct webhook_report *rep, struct herr *err)
{
	long long failed_hooks[64];
	size_t n_failed = 0, i;
	sqlite3_stmt *due = NULL, *ok = NULL, *again = NULL;
	CURL *curl = NULL;
	char why[256];
	int rc, any, ret = -1;
	long long now;

	memset(rep, 0, sizeof *rep);
	now = db_now();
	/* rule (3), and nothing to do at all: no work, no curl handle */
	if (db_run2(db, "DELETE FROM webhook_outbox WHERE status = 'delivered' AND "
	            "delivered_at < ?1", now - WEBHOOK_KEEP_DELIVERED, 0, NULL,
	            "remove old deliveries", err) < 0)
		return -1;
	if (db_prepare(db, &due, "SELECT o.id, o.webhook_id, o.kind, o.payload, o.attempts, "
	               "o.created_at, w.url, w.secret FROM webhook_outbox o JOIN webhooks w ON "
	               "w.id = o.webhook_id WHERE o.status = 'pending' AND o.next_at <= ?1 "
	               "ORDER BY o.next_at, o.id LIMIT ?2", err) < 0 ||
	    db_prepare(db, &ok, "UPDATE webhook_outbox SET status = 'delivered', attempts = "
	               "attempts + 1, delivered_at = ?2, last_error = NULL WHERE id = ?1", err) < 0 ||
	    db_prepare(db, &again, "UPDATE webhook_outbox SET status = ?3, attempts = attempts + 1, "
	               "next_at = ?2, last_error = ?4 WHERE id = ?1", err) < 0)
		goto out;
	do {
		any = 0;
		now = db_now();
		sqlite3_bind_int64(due, 1, now);
		sqlite3_bind_int(due, 2, WEBHOOK_BATCH);
		while ((rc = sqlite3_step(due)) == SQLITE_ROW) {
			long long id = sqlite3_column_int64(due, 0), hook = sqlite3_column_int64(due, 1);
			long long attempts = sqlite3_column_int64(due, 4);
			long long created = sqlite3_column_int64(due, 5);
			int skip = 0, sent;

			if (*stop || (deadline && mono() >= deadline))
				break;
			for (i = 0; i < n_failed; i++)
				skip |= failed_hooks[i] == hook;
			if (skip)
				continue;   /* rule (2): this receiver failed in this call */
			if (!curl && !(curl = curl_easy_init())) {
				herr_set(err, EX_OSERR, NULL, "cannot start libcurl");
				goto out;
			}
			sent = post(curl, col(due, 6), col(due, 7), id, col(due, 2), col(due, 3), why,
			            sizeof why) == 0;
			now = db_now();
			if (sent) {
				sqlite3_bind_int64(ok, 1, id);
				sqlite3_bind_int64(ok, 2, now);
				rc = sqlite3_step(ok);
				sqlite3_reset(ok);
				rep->delivered++;
			} else {
				int give_up = now >= created + cfg->webhook_give_up;

				sqlite3_bind_int64(again, 1, id);
				sqlite3_bind_int64(again, 2, next_try(cfg, now, attempts + 1));
				sqlite3_bind_text(again, 3, give_up ? "failed" : "pending", -1,
				                  SQLITE_STATIC);
				sqlite3_bind_text(again, 4, why, -1, SQLITE_TRANSIENT);
				rc = sqlite3_step(again);
				sqlite3_reset(again);
				if (give_up)
					rep->failed++;
				else
					rep->retried++;
				if (n_failed < sizeof failed_hooks / sizeof failed_hooks[0])
					failed_hooks[n_failed++] = hook;
			}
			if (rc != SQLITE_DONE) {
				db_error(db, err, "record a webhook delivery");
				goto out;
			}
			any = 1;
		}
		sqlite3_reset(due);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
			db_error(db, err, "read the webhook outbox");
			goto out;
		}
	} while (any && !*stop && !(deadline && mono() >= deadline));
	ret = 0;
out:
	sqlite3_finalize(due);
	sqlite3_finalize(ok);
	sqlite3_finalize(again);
	if (curl)
		curl_easy_cleanup(curl);
	return ret;
}
