/*
 * webarchive.c - herald serve's web archive: the index of a public list's
 * sent issues (/archive) and an issue's web copy (/archive/ID, or
 * /archive/ID/TOKEN for a list that is not public), rendered as a reader
 * with no data sees it and kept in the issue cache once rendered.
 */
#include "webint.h"

#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/issue.h"
#include "herald/message.h"
#include "herald/webpages.h"

#define ARCHIVE_MAX 500 /* issues listed on /archive */

/* ---- the archive ---- */

enum MHD_Result
web_handle_archive_index(struct web_server *s, struct MHD_Connection *c, const struct web_route *r)
{
	struct buf page = BUF_INIT(4u << 20);
	struct webpage_issue *v;
	struct web_thread *t;
	sqlite3_stmt *st;
	struct herr err;
	size_t n = 0, i;
	int rc = SQLITE_DONE;

	herr_clear(&err);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (db_prepare(t->db, &st,
	               "SELECT i.id, i.subject, coalesce(i.started_at, i.send_at, i.created_at), "
	               "CASE WHEN l.title != '' THEN l.title ELSE l.name END "
	               "FROM issues i JOIN lists l ON l.id = i.list_id "
	               "WHERE l.public = 1 AND i.status IN ('sent', 'sending') "
	               "ORDER BY 3 DESC, i.id DESC LIMIT ?1", &err) < 0)
		return web_db_failed(s, c, &err, "archive");
	sqlite3_bind_int(st, 1, ARCHIVE_MAX);
	if (!(v = calloc(ARCHIVE_MAX, sizeof *v))) {
		sqlite3_finalize(st);
		return MHD_NO;
	}
	while (n < ARCHIVE_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].subject = strdup((const char *)sqlite3_column_text(st, 1));
		v[n].date = sqlite3_column_int64(st, 2);
		v[n].list_title = strdup((const char *)sqlite3_column_text(st, 3));
		if (!v[n].subject || !v[n].list_title) {
			n++;
			herr_set(&err, EX_OSERR, NULL, "out of memory");
			break;
		}
		n++;
	}
	if (!err.code && rc != SQLITE_DONE && rc != SQLITE_ROW)
		db_error(t->db, &err, "list the archive");
	sqlite3_finalize(st);
	rc = err.code ? -1 :
	     webpage_archive(&page, s->cfg->lang, r->index_slash ? "" : "archive/", v, n);
	for (i = 0; i < n; i++) {
		free((char *)v[i].subject);
		free((char *)v[i].list_title);
	}
	free(v);
	if (err.code) {
		buf_free(&page);
		return web_db_failed(s, c, &err, "archive");
	}
	return web_queue_page_or_fail(s, c, rc, &page);
}

/* The issue as a reader with no data sees it: message_merge() for a
 * stand-in recipient, untracked, so links are direct and there is no
 * pixel.  *out is malloc'd. */
static int
render_archive(struct web_server *s, sqlite3 *db, long long id, char **out, size_t *len,
               struct herr *err)
{
	struct message_recipient rcpt = { 0, "", "", NULL, 1, 0, NULL };
	struct buf subject = BUF_INIT(1u << 16), html = BUF_INIT(MESSAGE_MAX),
	           text = BUF_INIT(MESSAGE_MAX);
	struct message_ctx m;
	struct issue is;
	struct list l;
	int rc;

	if (issue_get(db, id, &is, err) < 0)
		return -1;
	if (list_get_by_id(db, is.list_id, &l, err) < 0) {
		issue_clear(&is);
		return -1;
	}
	rc = message_ctx_init(&m, s->cfg, &s->key, &is, &l, err);
	issue_clear(&is);
	if (rc < 0)
		return -1;
	rc = message_merge(&m, &rcpt, &subject, &html, &text, err);
	message_ctx_free(&m);
	buf_free(&subject);
	buf_free(&text);
	if (rc < 0) {
		buf_free(&html);
		return -1;
	}
	*len = html.len;
	if (!(*out = buf_detach(&html)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	return 0;
}

enum MHD_Result
web_handle_archive(struct web_server *s, struct MHD_Connection *c, const struct web_route *r)
{
	struct issue_links *il;
	struct web_thread *t;
	sqlite3_stmt *st;
	struct token tok;
	struct herr err;
	char *html = NULL, *copy;
	size_t len = 0;
	long long list_id = 0;
	int rc, public = 0, shown = 0;

	herr_clear(&err);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (db_prepare(t->db, &st, "SELECT i.list_id, l.public, i.status IN ('sent', 'sending') "
	               "OR (i.status = 'paused' AND i.started_at IS NOT NULL) "
	               "FROM issues i JOIN lists l ON l.id = i.list_id WHERE i.id = ?1", &err) < 0)
		return web_db_failed(s, c, &err, "archive");
	sqlite3_bind_int64(st, 1, r->id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list_id = sqlite3_column_int64(st, 0);
		public = sqlite3_column_int(st, 1);
		shown = sqlite3_column_int(st, 2);
	} else if (rc != SQLITE_DONE)
		db_error(t->db, &err, "read issue");
	sqlite3_finalize(st);
	if (err.code)
		return web_db_failed(s, c, &err, "archive");
	/* drafts are nobody's business; a list that is not public needs the
	 * view token its mails carry */
	if (!shown)
		return web_not_found(s, c);
	if (r->token_len) {
		if (web_check_token(s, r->token, r->token_len, TOKEN_VIEW, &tok) < 0 ||
		    (long long)tok.issue_id != r->id || (long long)tok.list_id != list_id)
			return web_not_found(s, c);
	} else if (!public)
		return web_not_found(s, c);
	if (!(il = web_links_get(s, t, r->id, &err)))
		return web_db_failed(s, c, &err, "archive");
	pthread_mutex_lock(&s->cache_mu);
	if (il->archive_html && (copy = malloc(il->archive_len + 1))) {
		memcpy(copy, il->archive_html, il->archive_len + 1);
		html = copy;
		len = il->archive_len;
	}
	pthread_mutex_unlock(&s->cache_mu);
	if (!html) {
		if (render_archive(s, t->db, r->id, &html, &len, &err) < 0)
			return web_db_failed(s, c, &err, "archive");
		/* a sent issue's parts never change: keep the copy */
		pthread_mutex_lock(&s->cache_mu);
		if (!il->archive_html && (copy = malloc(len + 1))) {
			memcpy(copy, html, len + 1);
			il->archive_html = copy;
			il->archive_len = len;
		}
		pthread_mutex_unlock(&s->cache_mu);
	}
	return web_queue_body(s, c, MHD_HTTP_OK, html, len, "text/html; charset=utf-8", CSP_ARCHIVE,
	                  NULL, NULL);
}

