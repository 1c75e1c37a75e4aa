/*
 * apimail.c - one-off mail through the HTTP API (see apimail.h for rules
 * (1)-(4)).
 *
 * Owns the table api_mails (sql/023_api_mail.sql).  Rendering is
 * render.c's, merging tmpl.c's, the message message.c's
 * (message_build_automatic()), the send mailsend.c's on the web server's
 * mail thread (webmail.c); this file checks, records and answers.
 */
#include "herald/apimail.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/issue.h"
#include "herald/privacy.h"
#include "herald/render.h"
#include "herald/suppress.h"
#include "herald/tmpl.h"

#define DATA_MAX 64   /* merge data keys */

void
apimail_free(struct apimail *m)
{
	if (!m)
		return;
	free(m->subject);
	buf_free(&m->text);
	buf_free(&m->html);
	free(m);
}

/* Compile `src` and merge it with `v` into `out`; 422 naming `field` when
 * it refers to a field the data does not give. */
static int
merge(const char *src, size_t len, const char *field, const struct tmpl_vars *v,
      enum tmpl_escape esc, struct buf *out, struct api_error *e)
{
	struct tmpl *t = NULL;
	struct herr err;
	int rc;

	herr_clear(&err);
	if (tmpl_compile(src, len, field, 1, &t, &err) < 0)
		return api_error_set(e, 422, "invalid_field", field, "%s", err.msg);
	rc = tmpl_merge(t, v, esc, out);
	tmpl_free(t);
	return rc < 0 ? api_error_set(e, 413, "too_large", field, "the merged %s is too large",
	                              field) : 0;
}

/* The data object into attributes (strings, numbers and booleans as
 * written; null is no value); `texts` keeps what it made. */
static int
data_attrs(json_t *data, struct tmpl_attr *attrs, char **texts, size_t *n, struct api_error *e)
{
	const char *k;
	json_t *v;
	char field[96];

	*n = 0;
	if (!data)
		return 0;
	if (!json_is_object(data))
		return api_error_set(e, 422, "invalid_field", "data", "data is an object");
	json_object_foreach(data, k, v) {
		snprintf(field, sizeof field, "data.%.80s", k);
		if (*n == DATA_MAX)
			return api_error_set(e, 422, "invalid_field", "data", "at most %d data keys",
			                     DATA_MAX);
		if (json_is_null(v))
			continue;
		if (json_is_string(v))
			texts[*n] = strdup(json_string_value(v));
		else if (json_is_number(v) || json_is_boolean(v))
			texts[*n] = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		else
			return api_error_set(e, 422, "invalid_field", field, "a data value is a string, "
			                     "number, boolean or null");
		if (!texts[*n])
			return api_error_set(e, 500, "internal", NULL, "out of memory");
		attrs[*n].key = k;
		attrs[*n].value = texts[*n];
		(*n)++;
	}
	return 0;
}

static const char *
attr(const struct tmpl_attr *attrs, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(attrs[i].key, key))
			return attrs[i].value;
	return NULL;
}

int
apimail_prepare(sqlite3 *db, const struct config *cfg, const struct token_key *key,
                json_t *req, struct apimail **out, struct api_error *e)
{
	const char *k, *to = NULL, *subject = NULL, *markdown = NULL;
	const char *postal = cfg->postal_address ? cfg->postal_address : "";
	char hit[SUPPRESS_PATTERN_MAX], *texts[DATA_MAX];
	struct tmpl_attr attrs[DATA_MAX];
	struct render_opts ro = { 0, 0 };
	struct render_doc doc = { 0 };
	struct buf subj = BUF_INIT(APIMAIL_SUBJECT_MAX * 4);
	struct apimail *m = NULL;
	struct tmpl_vars v;
	struct issue is;
	struct herr err;
	long long issue_id = 0;
	size_t n_attrs = 0, i;
	json_t *val, *data = NULL;
	int have_issue = 0, ret = -1, erased = 0;

	*out = NULL;
	hit[0] = '\0';
	memset(&is, 0, sizeof is);
	herr_clear(&err);
	if (!json_is_object(req))
		return api_error_set(e, 422, "invalid_field", NULL, "the body is an object");
	json_object_foreach(req, k, val) {
		if (!strcmp(k, "to") && json_is_string(val))
			to = json_string_value(val);
		else if (!strcmp(k, "subject") && json_is_string(val))
			subject = json_string_value(val);
		else if (!strcmp(k, "markdown") && json_is_string(val))
			markdown = json_string_value(val);
		else if (!strcmp(k, "issue") && json_is_integer(val) && json_integer_value(val) > 0) {
			issue_id = json_integer_value(val);
			have_issue = 1;
		} else if (!strcmp(k, "data"))
			data = val;
		else if (!strcmp(k, "to") || !strcmp(k, "subject") || !strcmp(k, "markdown") ||
		         !strcmp(k, "issue"))
			return api_error_set(e, 422, "invalid_field", k, "%s has the wrong type", k);
		else
			return api_error_set(e, 422, "unknown_field", k, "'%.60s' is not a field of a "
			                     "mail", k);
	}
	if (!to)
		return api_error_set(e, 422, "invalid_field", "to", "to is required");
	if (have_issue == (markdown != NULL))
		return api_error_set(e, 422, "invalid_field", have_issue ? "markdown" : "issue",
		                     "give either markdown (with subject) or issue");
	if (markdown && !subject)
		return api_error_set(e, 422, "invalid_field", "subject", "subject is required with "
		                     "markdown");
	if (markdown && strlen(markdown) > APIMAIL_MARKDOWN_MAX)
		return api_error_set(e, 413, "too_large", "markdown", "markdown is over %u bytes",
		                     APIMAIL_MARKDOWN_MAX);
	if (!(m = calloc(1, sizeof *m)))
		return api_error_set(e, 500, "internal", NULL, "out of memory");
	buf_init(&m->text, APIMAIL_MARKDOWN_MAX * 2);
	buf_init(&m->html, APIMAIL_MARKDOWN_MAX * 4);
	if (address_parse(to, &m->to, &err) < 0) {
		api_error_set(e, 422, "invalid_email", "to", "%s", err.msg);
		goto out;
	}
	/* rule (1) */
	if (suppress_check(db, m->to.key, hit, &err) != 0 ||
	    (erased = privacy_erased_check(db, key, m->to.key, &err)) == 2) {
		if (err.code)
			api_error_set(e, 503, "unavailable", NULL, "the database failed: %s", err.msg);
		else
			api_error_set(e, 409, "suppressed", "to", "the address is suppressed%s%s",
			              hit[0] ? ": " : " (erased on request)", hit[0] ? hit : "");
		goto out;
	}
	if (erased < 0) {
		api_error_set(e, 503, "unavailable", NULL, "the database failed: %s", err.msg);
		goto out;
	}
	if (have_issue) {
		if (issue_get(db, issue_id, &is, &err) < 0) {
			if (err.code == EX_NOINPUT)
				api_error_set(e, 422, "invalid_field", "issue", "there is no issue %lld",
				              issue_id);
			else
				api_error_set(e, 503, "unavailable", NULL, "the database failed: %s",
				              err.msg);
			goto out;
		}
		subject = is.subject;
		markdown = is.markdown ? is.markdown : "";
	}
	for (i = 0; i < DATA_MAX; i++)
		texts[i] = NULL;
	if (data_attrs(data, attrs, texts, &n_attrs, e) < 0)
		goto out_texts;
	if (render_markdown(markdown, strlen(markdown), "markdown", 1, &ro, &doc, &err) < 0) {
		api_error_set(e, 422, "invalid_field", "markdown", "%s", err.msg);
		goto out_texts;
	}
	memset(&v, 0, sizeof v);
	v.name = attr(attrs, n_attrs, "name");
	v.email = m->to.addr;
	v.attrs = attrs;
	v.n_attrs = n_attrs;
	if (merge(subject, strlen(subject), "subject", &v, TMPL_RAW, &subj, e) < 0 ||
	    merge(doc.text, strlen(doc.text), "markdown", &v, TMPL_RAW, &m->text, e) < 0)
		goto out_texts;
	/* the subject is a header: nothing the data brought may break it */
	for (i = 0; i < subj.len; i++)
		if ((unsigned char)subj.data[i] < 0x20 || subj.data[i] == 0x7f) {
			api_error_set(e, 422, "invalid_field", "subject", "the subject holds a control "
			              "character (after merging the data)");
			goto out_texts;
		}
	if (!subj.len || subj.len > APIMAIL_SUBJECT_MAX) {
		api_error_set(e, 422, "invalid_field", "subject", "the subject is 1 to %d bytes",
		              APIMAIL_SUBJECT_MAX);
		goto out_texts;
	}
	if (buf_addf(&m->text, "\n-- \n%s\n", postal) < 0 ||
	    buf_adds(&m->html, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>") < 0 ||
	    tmpl_escape_html(&m->html, buf_str(&subj), subj.len) < 0 ||
	    buf_adds(&m->html, "</title></head><body style=\"font-family:Helvetica,Arial,"
	             "sans-serif;font-size:16px;line-height:1.5;color:#1f2933;\">") < 0 ||
	    merge(doc.html, strlen(doc.html), "markdown", &v, TMPL_HTML, &m->html, e) < 0 ||
	    buf_adds(&m->html, "<p style=\"font-size:13px;color:#52606d;\">") < 0 ||
	    tmpl_escape_html(&m->html, postal, strlen(postal)) < 0 ||
	    buf_adds(&m->html, "</p></body></html>\n") < 0 ||
	    !(m->subject = strdup(buf_str(&subj)))) {
		if (!e->status)
			api_error_set(e, 500, "internal", NULL, "out of memory");
		goto out_texts;
	}
	*out = m;
	m = NULL;
	ret = 0;
out_texts:
	for (i = 0; i < n_attrs; i++)
		free(texts[i]);
out:
	render_doc_free(&doc);
	issue_clear(&is);
	buf_free(&subj);
	apimail_free(m);
	return ret;
}

int
apimail_record(sqlite3 *db, struct apimail *m, long long key_id, const char *idem_key,
               const char *body_hash, int *existing, struct api_error *e)
{
	sqlite3_stmt *st;
	struct herr err;
	int rc;

	*existing = 0;
	herr_clear(&err);
	if (db_begin(db, &err) < 0)
		goto db;
	if (idem_key) {
		if (db_prepare(db, &st, "SELECT id, body_hash FROM api_mails WHERE api_key_id = ?1 "
		               "AND idem_key = ?2", &err) < 0)
			goto rollback;
		sqlite3_bind_int64(st, 1, key_id);
		sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int same = !strcmp((const char *)sqlite3_column_text(st, 1), body_hash);

			m->id = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
			db_rollback(db);
			*existing = 1;
			if (!same)
				return api_error_set(e, 422, "idempotency_mismatch", NULL, "this "
				                     "Idempotency-Key was used for another request");
			return 0;
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			db_error(db, &err, "read api_mails");
			goto rollback;
		}
	}
	if (db_prepare(db, &st, "INSERT INTO api_mails (api_key_id, idem_key, body_hash, "
	               "recipient, recipient_key, subject, created_at) VALUES (?1, ?2, ?3, ?4, ?5, "
	               "?6, ?7)", &err) < 0)
		goto rollback;
	sqlite3_bind_int64(st, 1, key_id);
	if (idem_key)
		sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, body_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, m->to.addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, m->to.key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, m->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_error(db, &err, "record the mail");
		goto rollback;
	}
	m->id = sqlite3_last_insert_rowid(db);
	if (db_commit(db, &err) < 0)
		goto db;
	return 0;
rollback:
	db_rollback(db);
db:
	return api_error_set(e, 503, "unavailable", NULL, "the database failed: %s", err.msg);
}

int
apimail_build(const struct apimail *m, const struct config *cfg,
              const struct dkim_signer *dkim, struct buf *out, struct message_out *mo,
              struct herr *err)
{
	mo->rcpt = m->to;
	return message_build_automatic(cfg, dkim, "api", NULL, m->subject, buf_str((struct buf *)&m->text),
	                               m->text.len, buf_str((struct buf *)&m->html), m->html.len,
	                               db_now(), out, mo, err);
}

int
apimail_result(sqlite3 *db, long long id, int rc, const struct mailsend_result *res,
               const char *message_id, const struct herr *send_err, struct herr *err)
{
	const char *status = rc == 0 ? "sent" : send_err->code == EX_TEMPFAIL ? "deferred"
	                                                                     : "failed";
	sqlite3_stmt *st;
	int step;

	if (db_prepare(db, &st, "UPDATE api_mails SET status = ?2, smtp_code = ?3, smtp_reply = ?4, "
	               "relay = ?5, message_id = ?6, sent_at = ?7 WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	if (res && res->smtp.code)
		sqlite3_bind_int(st, 3, res->smtp.code);
	sqlite3_bind_text(st, 4, rc == 0 ? (res ? res->smtp.reply : "") : send_err->msg, -1,
	                  SQLITE_TRANSIENT);
	if (res && res->relay)
		sqlite3_bind_text(st, 5, res->relay, -1, SQLITE_TRANSIENT);
	if (message_id && *message_id)
		sqlite3_bind_text(st, 6, message_id, -1, SQLITE_TRANSIENT);
	if (rc == 0)
		sqlite3_bind_int64(st, 7, db_now());
	step = sqlite3_step(st);
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : db_error(db, err, "record the mail's result");
}

int
apimail_json(sqlite3 *db, long long id, long long key_id, json_t **out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	if (db_prepare(db, &st, "SELECT json_object('id', id, 'to', recipient, 'subject', subject, "
	               "'status', status, 'smtp_code', smtp_code, 'smtp_reply', smtp_reply, "
	               "'relay', relay, 'message_id', message_id, 'created_at', created_at, "
	               "'sent_at', sent_at) FROM api_mails WHERE id = ?1 AND api_key_id = ?2",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, key_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*out = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no mail %lld", id);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read the mail");
	return *out ? 0 : herr_set(err, EX_OSERR, NULL, "out of memory");
}
