/*
 * webtrack.c - herald serve's open pixel (/o/TOKEN.gif) and click
 * redirects (/c/TOKEN/N): web.c's invariants (1) an event only for a valid
 * token whose rows exist, and only on GET; (2) a redirect only to one of
 * the token's issue's own links; (4) events go to the event writer.
 * The anonymous kinds (TOKEN_OPEN_ANON, TOKEN_CLICK_ANON, tracking.h) name
 * no subscriber, and their events are recorded with none.
 */
#include "webint.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/message.h"
#include "herald/subscriber.h"

/* ---- opens and clicks ---- */

/* Invariant (1): only events whose rows exist reach the event writer, so
 * a batch is never refused by a foreign key. */
static void
record(struct web_server *s, struct MHD_Connection *c, const char *kind, const struct token *t,
       long long n)
{
	const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_USER_AGENT);
	char detail[1024];
	struct event ev;

	if (web_event_detail(detail, sizeof detail, n, web_ua_classify(ua), ua) < 0)
		return;
	memset(&ev, 0, sizeof ev);
	ev.kind = kind;
	ev.issue_id = (long long)t->issue_id;
	ev.subscriber_id = (long long)t->subscriber_id;
	ev.list_id = (long long)t->list_id;
	ev.detail = detail;
	eventlog_add(s->events, &ev);
}

enum MHD_Result
web_handle_open(struct web_server *s, struct MHD_Connection *c, enum web_method m,
            const struct web_route *r)
{
	struct web_thread *t;
	struct token tok;

	/* a mail client must never see a broken image: the GIF whatever
	 * the token, and nothing recorded when it is not a valid one */
	if (m == WEB_GET &&
	    (web_check_token(s, r->token, r->token_len, TOKEN_OPEN, &tok) == 0 ||
	     web_check_token(s, r->token, r->token_len, TOKEN_OPEN_ANON, &tok) == 0) &&
	    (t = web_thread_db(s)) && web_rows_exist(t, &tok) == 1)
		record(s, c, "open", &tok, 0);
	return web_queue(s, c, MHD_HTTP_OK, atomic_load(&s->stopping) ? s->gif_close : s->gif);
}

/* The Location for a click: the link merged for the subscriber when it
 * has fields (as message.c would have written it directly), with bytes a
 * URL cannot hold raw (controls, space, non-ASCII) %-encoded.  Returns 0,
 * or -1 with err set. */
static int
click_target(struct web_server *s, struct web_thread *t, const struct issue_links *il,
             const struct token *tok, size_t i, struct buf *out, struct herr *err)
{
	struct buf merged = BUF_INIT(1u << 16);
	const unsigned char *p;

	if (!il->tmpl[i])
		p = (const unsigned char *)il->url[i];
	else {
		struct subscriber sub;
		struct tmpl_vars v;
		struct tmpl_attr *attrs = NULL;
		json_t *obj = NULL;
		char unsub[512];
		int rc, exists;

		if (subscriber_get_by_id(t->db, (long long)tok->subscriber_id, &sub, err) == 0)
			exists = 1;
		else if (err->code == EX_NOINPUT) {
			exists = 0; /* gone since the send: the link without their data */
			herr_clear(err);
		} else
			return -1;
		memset(&v, 0, sizeof v);
		if (exists) {
			if (message_load_attrs(sub.attributes, &obj, &attrs, &v.n_attrs) < 0)
				v.n_attrs = 0;
			v.attrs = attrs;
			v.name = sub.name;
			v.email = sub.email;
		}
		if (message_unsubscribe_url(s->cfg, &s->key, (long long)tok->subscriber_id,
		                            (long long)tok->list_id, (long long)tok->issue_id, unsub,
		                            sizeof unsub) == 0)
			v.unsubscribe_url = unsub;
		rc = tmpl_merge(il->tmpl[i], &v, TMPL_URL, &merged); /* as message.c does */
		free(attrs);
		json_decref(obj);
		if (exists)
			subscriber_clear(&sub);
		if (rc < 0) {
			buf_free(&merged);
			return herr_set(err, EX_SOFTWARE, NULL, "cannot merge link %zu", i + 1);
		}
		p = (const unsigned char *)buf_str(&merged);
	}
	for (; *p; p++) {
		if ((*p <= 0x20 || *p >= 0x7f) ? buf_addf(out, "%%%02X", *p) < 0
		                               : buf_addc(out, (char)*p) < 0) {
			buf_free(&merged);
			return herr_set(err, EX_SOFTWARE, NULL, "link %zu is too long", i + 1);
		}
	}
	buf_free(&merged);
	return 0;
}

enum MHD_Result
web_handle_click(struct web_server *s, struct MHD_Connection *c, enum web_method m,
             const struct web_route *r)
{
	struct buf loc = BUF_INIT(1u << 16);
	struct issue_links *il;
	struct web_thread *t;
	struct MHD_Response *resp;
	struct token tok;
	struct herr err;
	enum MHD_Result ret;

	herr_clear(&err);
	if (web_check_token(s, r->token, r->token_len, TOKEN_CLICK, &tok) < 0 &&
	    web_check_token(s, r->token, r->token_len, TOKEN_CLICK_ANON, &tok) < 0)
		return web_not_found(s, c);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (!(il = web_links_get(s, t, (long long)tok.issue_id, &err)))
		return web_db_failed(s, c, &err, "click");
	/* invariant (2): the token's own issue, one of its links */
	if (il->list_id != (long long)tok.list_id || r->n < 1 || (size_t)r->n > il->n)
		return web_not_found(s, c);
	/* a link with merge fields never went through an anonymous redirect
	 * (message.c): there is no one to merge it for */
	if (tok.kind == TOKEN_CLICK_ANON && il->tmpl[r->n - 1])
		return web_not_found(s, c);
	if (click_target(s, t, il, &tok, (size_t)r->n - 1, &loc, &err) < 0) {
		buf_free(&loc);
		return web_db_failed(s, c, &err, "click");
	}
	if (strncasecmp(buf_str(&loc), "https://", 8) && strncasecmp(buf_str(&loc), "http://", 7)) {
		buf_free(&loc);
		return web_not_found(s, c); /* mailto and the like were never redirected */
	}
	if (m == WEB_GET && web_rows_exist(t, &tok) == 1)
		record(s, c, "click", &tok, r->n);
	if (!(resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT))) {
		buf_free(&loc);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, buf_str(&loc)) != MHD_YES) {
		MHD_destroy_response(resp);
		buf_free(&loc);
		return web_not_found(s, c);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	web_add_security_headers(resp, CSP_PAGE);
	if (atomic_load(&s->stopping))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = web_queue(s, c, MHD_HTTP_FOUND, resp);
	MHD_destroy_response(resp);
	buf_free(&loc);
	return ret;
}

