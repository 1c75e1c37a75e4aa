/*
 * webprivacy.c - herald serve's handlers for a reader's own data
 * (privacy.h): the preference centre's "Download my data" (POST
 * /p/TOKEN/export) and "Delete me" (POST /p/TOKEN/forget), and the link
 * the second mails (/erase/CODE: GET asks, POST erases).
 *
 * Only translation from HTTP: the token and the form's nonce are checked
 * here (webprefs.h), everything else is one core call.  The rules:
 *   - the data is never shown on a page: a forwarded preference link
 *     would show it to whoever holds it.  It goes by mail to the
 *     subscriber's own address, built on the mail thread (webmail.c);
 *   - a preference link alone cannot erase anybody: "Delete me" only
 *     mails a single-use, expiring link ([web] confirm_ttl) to the
 *     address, and only that link's POST erases (privacy_request_use());
 *   - both mails count against the address like confirmation mails
 *     (WEB_CONFIRM_PER_ADDR a day), so a leaked link cannot flood an inbox.
 */
#include "webint.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/address.h"
#include "herald/db.h"
#include "herald/message.h"
#include "herald/privacy.h"
#include "herald/subscriber.h"
#include "herald/webpages.h"
#include "herald/webprefs.h"

/* What a queued mail needs: the person, and for the erase mail its code. */
struct privacy_job {
	long long subscriber_id;
	char      code[PRIVACY_CODE_LEN + 1];    /* "" for the export */
};

/* On the mail thread: the export as it is when the mail goes. */
static int
build_export(void *ctx, const struct config *cfg, sqlite3 *db, const struct dkim_signer *dkim,
             struct buf *out, struct message_out *mo, struct herr *err)
{
	const struct privacy_job *j = ctx;
	struct subscriber s;
	json_t *doc;
	char *text;
	int rc;

	if (subscriber_get_by_id(db, j->subscriber_id, &s, err) < 0)
		return -1;
	if (privacy_export_id(db, j->subscriber_id, db_now(), &doc, err) < 0) {
		subscriber_clear(&s);
		return -1;
	}
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	rc = text ? privacy_mail_export(cfg, dkim, s.email, text, strlen(text), db_now(), out, mo,
	                                err)
	          : herr_set(err, EX_OSERR, NULL, "out of memory");
	free(text);
	subscriber_clear(&s);
	return rc;
}

static int
build_erase(void *ctx, const struct config *cfg, sqlite3 *db, const struct dkim_signer *dkim,
            struct buf *out, struct message_out *mo, struct herr *err)
{
	const struct privacy_job *j = ctx;
	struct subscriber s;
	int rc;

	if (subscriber_get_by_id(db, j->subscriber_id, &s, err) < 0)
		return -1;
	rc = privacy_mail_erase(cfg, dkim, s.email, j->code, cfg->confirm_ttl, db_now(), out, mo,
	                        err);
	subscriber_clear(&s);
	return rc;
}

static enum MHD_Result
refused(struct web_server *s, struct MHD_Connection *c)
{
	return web_queue_notice(s, c, MHD_HTTP_FORBIDDEN, "This form has expired",
	                        "Nothing was done. Please open the link in your mail again and "
	                        "use the page it shows.");
}

/* POST /p/TOKEN/export and /p/TOKEN/forget. */
static enum MHD_Result
request_mail(struct web_server *s, struct MHD_Connection *c, const struct web_route *r,
             const struct request *rq)
{
	struct privacy_job *j;
	struct web_form *form;
	struct subscriber sub;
	struct web_thread *t;
	struct address a;
	struct token tok;
	struct herr err;
	int ok, forget = r->kind == WEB_ROUTE_PRIVACY_FORGET;

	herr_clear(&err);
	if (web_check_token(s, r->token, r->token_len, TOKEN_PREFERENCES, &tok) < 0)
		return web_not_found(s, c);
	if (!(form = malloc(sizeof *form)))
		return MHD_NO;
	ok = web_form_parse(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_CONTENT_TYPE),
	                    buf_str(&rq->body), rq->body.len, form) == 0 &&
	     webprefs_nonce_check(&s->key, r->token, r->token_len,
	                          web_form_get(form, WEBPREFS_NONCE_FIELD),
	                          (long long)time(NULL)) == 0;
	free(form);
	if (!ok)
		return refused(s, c);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (subscriber_get_by_id(t->db, (long long)tok.subscriber_id, &sub, &err) < 0)
		return web_db_failed(s, c, &err, forget ? "forget" : "export");
	if (address_parse(sub.email, &a, &err) < 0 ||
	    !web_limiter_hit(s->addr_limit, a.key, web_mono_now())) {
		subscriber_clear(&sub);
		return web_queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
		                          "We have already sent several messages to this address "
		                          "today. Please look for them in your inbox.",
		                          MHD_HTTP_HEADER_RETRY_AFTER, "3600");
	}
	if (!(j = calloc(1, sizeof *j))) {
		subscriber_clear(&sub);
		return MHD_NO;
	}
	j->subscriber_id = sub.id;
	if (forget && privacy_request_new(t->db, sub.id, db_now(), j->code, &err) < 0) {
		free(j);
		subscriber_clear(&sub);
		return web_db_failed(s, c, &err, "forget");
	}
	if (webmail_enqueue_build(s->mail, forget ? build_erase : build_export, j,
	                          forget ? "erase link" : "data export") < 0) {
		subscriber_clear(&sub);
		return web_unavailable(s, c);
	}
	subscriber_clear(&sub);
	if (forget)
		return web_queue_notice(s, c, MHD_HTTP_OK, "Check your inbox",
		                        "We have sent a link to your address. Nothing is deleted "
		                        "until you open it and confirm.");
	return web_queue_notice(s, c, MHD_HTTP_OK, "Your data is on its way",
	                        "We have sent a copy of everything we hold about you to your "
	                        "address. It is never shown on a web page.");
}

/* /erase/CODE: GET asks (invariant 3: changes nothing), POST erases. */
static enum MHD_Result
erase(struct web_server *s, struct MHD_Connection *c, enum web_method m,
      const struct web_route *r)
{
	struct buf page = BUF_INIT(1u << 16);
	struct privacy_forget_result res;
	enum privacy_request_state st;
	char code[PRIVACY_CODE_LEN + 1];
	struct subscriber sub;
	struct web_thread *t;
	struct herr err;
	long long sid;
	int rc;

	herr_clear(&err);
	if (r->token_len != PRIVACY_CODE_LEN)
		return web_not_found(s, c);
	memcpy(code, r->token, PRIVACY_CODE_LEN);
	code[PRIVACY_CODE_LEN] = '\0';
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (m == WEB_POST)
		rc = privacy_request_use(t->db, &s->key, code, db_now(), s->cfg->confirm_ttl, &st,
		                         &res, &err);
	else
		rc = privacy_request_state(t->db, code, db_now(), s->cfg->confirm_ttl, &st, &sid,
		                           &err);
	if (rc < 0)
		return web_db_failed(s, c, &err, "erase");
	if (st != PRIVACY_REQUEST_OPEN)
		return web_queue_notice(s, c, MHD_HTTP_OK, "This link no longer works",
		                        "A deletion link works once, and only for a few days. This "
		                        "one was used already, or is too old, so it changed nothing.");
	if (m == WEB_POST) {
		if (!res.checkpointed)
			web_log(s, "erasure done; the WAL checkpoint waits for a reader");
		return web_queue_notice(s, c, MHD_HTTP_OK, "Your data has been deleted",
		                        "We hold nothing about you any more, and will send you "
		                        "nothing. Signing up again is always possible.");
	}
	if (subscriber_get_by_id(t->db, sid, &sub, &err) < 0)
		return web_db_failed(s, c, &err, "erase");
	rc = webpage_erase_ask(&page, s->cfg->lang, sub.email);
	subscriber_clear(&sub);
	return web_queue_page_or_fail(s, c, rc, &page);
}

enum MHD_Result
web_handle_privacy(struct web_server *s, struct MHD_Connection *c, enum web_method m,
                   const struct web_route *r, const struct request *rq)
{
	if (r->kind == WEB_ROUTE_PRIVACY_ERASE)
		return erase(s, c, m, r);
	return request_mail(s, c, r, rq);
}
