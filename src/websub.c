/*
 * websub.c - herald serve's subscriber pages: unsubscribe (/u/TOKEN, with
 * RFC 8058 §3.2 one-click POST), confirm (/confirm/TOKEN) and sign-up
 * (POST /subscribe).  Each state change is one core call (subscriber.h)
 * in its own transaction, written before the answer (web.c invariant 4),
 * with the request's client address and User-Agent for its consent record
 * (consent.h); a sign-up's page never tells whether the address was known
 * (invariant 6).  After an unsubscribe the page offers the leaving survey
 * (POST action=survey with the page's nonce, answered by webprefs.c).
 * A sign-up form's ticked checkbox tracking_consent sets that attribute
 * ([tracking] mode = consent, tracking.h).
 */
#include "webint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "herald/address.h"
#include "herald/db.h"
#include "herald/message.h"
#include "herald/subscriber.h"
#include "herald/utf8.h"
#include "herald/webpages.h"
#include "herald/webprefs.h"

/* ---- unsubscribe and confirm ---- */

/* The subscriber and list a token names, for a page. */
static int
load_pair(struct web_thread *t, const struct token *tok, struct subscriber *sub,
          struct list *l, struct herr *err)
{
	if (subscriber_get_by_id(t->db, (long long)tok->subscriber_id, sub, err) < 0)
		return -1;
	if (list_get_by_id(t->db, (long long)tok->list_id, l, err) < 0) {
		subscriber_clear(sub);
		return -1;
	}
	return 0;
}

static const char *
title_of(const struct list *l)
{
	return l->title[0] ? l->title : l->name;
}

/* webint.h */
void
web_consent_of(struct web_server *s, struct MHD_Connection *c, const char *source,
           const char *text, char *ip, struct consent_ctx *out)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	web_client_ip(ci ? ci->client_addr : NULL,
	              MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Real-IP"),
	              s->cfg->proxies, s->cfg->n_proxies, ip, CONSENT_IP_MAX);
	memset(out, 0, sizeof *out);
	out->source = source;
	out->text = text;
	out->ip = ip;
	out->user_agent = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                              MHD_HTTP_HEADER_USER_AGENT);
	out->store_ip = s->cfg->store_ip;
}

enum MHD_Result
web_handle_unsubscribe(struct web_server *s, struct MHD_Connection *c, enum web_method m,
                   const struct web_route *r, const struct request *rq)
{
	struct buf page = BUF_INIT(1u << 16), lists = BUF_INIT(1u << 16);
	struct web_form *form = NULL;
	struct consent_ctx cc;
	struct subscriber sub;
	char ip[CONSENT_IP_MAX];
	size_t n_lists = 0;
	struct web_thread *t;
	struct list l;
	struct token tok;
	struct herr err;
	const char *v, *ctype;
	char nonce[WEBPREFS_NONCE_MAX];
	int rc, one_click = 0, resubscribe = 0;

	herr_clear(&err);
	if (web_check_token(s, r->token, r->token_len, TOKEN_UNSUBSCRIBE, &tok) < 0)
		return web_not_found(s, c);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (m == WEB_POST) {
		if (!(form = malloc(sizeof *form)))
			return MHD_NO;
		ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		/* RFC 8058 §3.2: the key/value pair, urlencoded or multipart;
		 * anything else posted here is the page's own form */
		if (web_form_parse(ctype, buf_str(&rq->body), rq->body.len, form) == 0) {
			one_click = (v = web_form_get(form, "List-Unsubscribe")) && !strcmp(v, "One-Click");
			resubscribe = !one_click && (v = web_form_get(form, "action")) &&
			              !strcmp(v, "resubscribe");
			/* the optional answer after leaving (webprefs.c): never
			 * an unsubscribe of its own */
			if (!one_click && (v = web_form_get(form, "action")) && !strcmp(v, "survey")) {
				enum MHD_Result ret = web_survey_post(s, c, t, r, &tok, form);

				free(form);
				return ret;
			}
		}
		free(form);
		if (one_click) {
			rc = subscription_unsubscribe_issue(t->db, (long long)tok.list_id,
			                                    (long long)tok.subscriber_id,
			                                    (long long)tok.issue_id, "one-click", &err);
			if (rc < 0 && err.code != EX_NOINPUT)
				return web_db_failed(s, c, &err, "unsubscribe");
			/* not (or no longer) on the list: what was asked holds */
			if (!(v = strdup("unsubscribed")))
				return MHD_NO;
			return web_queue_body(s, c, MHD_HTTP_OK, (char *)v, strlen(v),
			                  "text/plain; charset=utf-8", CSP_PAGE, NULL, NULL);
		}
	}
	if (load_pair(t, &tok, &sub, &l, &err) < 0)
		return web_db_failed(s, c, &err, "unsubscribe page");
	/* the lists this unsubscribe ends (rule (9)), named on both pages;
	 * taken before it ends them */
	if (m != WEB_POST || !resubscribe) {
		struct buf titles = BUF_INIT(1u << 15);

		rc = subscription_unsubscribe_scope(t->db, l.id, sub.id, (long long)tok.issue_id,
		                                    &titles, &n_lists, &err);
		if (rc == 0 && n_lists > 1 && message_lists_phrase(buf_str(&titles), &lists) < 0)
			rc = herr_set(&err, EX_OSERR, NULL, "out of memory");
		buf_free(&titles);
		if (rc < 0) {
			subscriber_clear(&sub);
			buf_free(&lists);
			return web_db_failed(s, c, &err, "unsubscribe page");
		}
	}
	if (n_lists <= 1 && buf_adds(&lists, title_of(&l)) < 0) {
		subscriber_clear(&sub);
		buf_free(&lists);
		return MHD_NO;
	}
	if (m != WEB_POST)
		rc = webpage_unsubscribe_ask(&page, s->cfg->lang, buf_str(&lists), n_lists,
		                             sub.email);
	else if (resubscribe) {
		web_consent_of(s, c, "unsubscribe page", list_consent_shown(&l), ip, &cc);
		if (subscription_confirm_consent(t->db, l.id, sub.id, "web", &cc, &err) < 0) {
			subscriber_clear(&sub);
			buf_free(&lists);
			if (err.code == EX_DATAERR)
				return web_queue_notice(s, c, MHD_HTTP_OK, "We cannot send to this address",
				                    "Mail to this address was refused or reported, so we "
				                    "no longer send anything to it.");
			if (err.code == EX_NOINPUT)
				return web_queue_notice(s, c, MHD_HTTP_OK, "You are not on this list",
				                    "This address was removed from the list. Please sign "
				                    "up again.");
			return web_db_failed(s, c, &err, "resubscribe");
		}
		rc = webpage_resubscribed(&page, s->cfg->lang, title_of(&l), sub.email);
	} else {
		if (subscription_unsubscribe_issue(t->db, l.id, sub.id, (long long)tok.issue_id, "web",
		                                   &err) < 0 &&
		    err.code != EX_NOINPUT) {
			subscriber_clear(&sub);
			buf_free(&lists);
			return web_db_failed(s, c, &err, "unsubscribe");
		}
		/* the survey's form carries the nonce of this page's token */
		rc = webprefs_nonce_make(&s->key, r->token, r->token_len, (long long)time(NULL),
		                         nonce) < 0 ? -1 :
		     webpage_unsubscribed(&page, s->cfg->lang, buf_str(&lists), n_lists, sub.email,
		                          nonce);
	}
	subscriber_clear(&sub);
	buf_free(&lists);
	return web_queue_page_or_fail(s, c, rc, &page);
}

/*
 * /confirm/TOKEN.  GET shows a button and changes nothing (invariant 3);
 * POST follows the link (subscriber.h: a link works once, for [web]
 * confirm_ttl); a used or expired link changes nothing and offers a new
 * one (POST action=resend, counted against the address like a sign-up).
 */
enum MHD_Result
web_handle_confirm(struct web_server *s, struct MHD_Connection *c, enum web_method m,
                   const struct web_route *r, const struct request *rq)
{
	struct buf page = BUF_INIT(1u << 16);
	struct consent_ctx cc;
	enum confirm_state cs;
	struct subscriber sub;
	struct web_thread *t;
	struct address a;
	struct list l;
	struct token tok;
	struct herr err;
	char status[16], ip[CONSENT_IP_MAX];
	long long cid;
	int rc, resend = 0;

	herr_clear(&err);
	if (web_check_token(s, r->token, r->token_len, TOKEN_CONFIRM, &tok) < 0)
		return web_not_found(s, c);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (m == WEB_POST) {
		struct web_form *form = malloc(sizeof *form);
		const char *v;

		if (!form)
			return MHD_NO;
		if (web_form_parse(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		                                               MHD_HTTP_HEADER_CONTENT_TYPE),
		                   buf_str(&rq->body), rq->body.len, form) == 0)
			resend = (v = web_form_get(form, "action")) && !strcmp(v, "resend");
		free(form);
	}
	if (load_pair(t, &tok, &sub, &l, &err) < 0)
		return web_db_failed(s, c, &err, "confirm");
	if (subscription_status(t->db, l.id, sub.id, status, &err) < 0 ||
	    confirmation_state(t->db, (long long)tok.issue_id, sub.id, l.id, s->cfg->confirm_ttl,
	                       &cs, &err) < 0) {
		subscriber_clear(&sub);
		return web_db_failed(s, c, &err, "confirm");
	}
	web_consent_of(s, c, "confirmation link", list_consent_shown(&l), ip, &cc);
	if (!strcmp(status, "confirmed"))
		rc = webpage_confirmed(&page, s->cfg->lang, title_of(&l), sub.email);
	else if (resend) {
		/* the same limit as a sign-up: a link cannot flood an inbox */
		if (address_parse(sub.email, &a, &err) < 0 ||
		    !web_limiter_hit(s->addr_limit, a.key, web_mono_now())) {
			subscriber_clear(&sub);
			return web_queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
			                          "We have already sent several confirmation messages "
			                          "to this address today. Please look for them in "
			                          "your inbox.", MHD_HTTP_HEADER_RETRY_AFTER, "3600");
		}
		if (confirmation_new(t->db, sub.id, l.id, &cid, &err) < 0) {
			subscriber_clear(&sub);
			return web_db_failed(s, c, &err, "confirm");
		}
		if (webmail_enqueue(s->mail, sub.id, cid, &l, sub.email, "") < 0) {
			subscriber_clear(&sub);
			return web_unavailable(s, c);
		}
		rc = webpage_check_inbox(&page, s->cfg->lang, title_of(&l), sub.email);
	} else if (cs != CONFIRM_OPEN)
		rc = webpage_confirm_expired(&page, s->cfg->lang, title_of(&l), sub.email);
	else if (m != WEB_POST)
		rc = webpage_confirm_ask(&page, s->cfg->lang, title_of(&l), sub.email);
	else if (confirmation_use_consent(t->db, (long long)tok.issue_id, sub.id, l.id,
	                                  s->cfg->confirm_ttl, &cc, &cs, &err) < 0) {
		subscriber_clear(&sub);
		if (err.code == EX_DATAERR)
			return web_queue_notice(s, c, MHD_HTTP_OK, "We cannot send to this address",
			                        "Mail to this address was refused or reported, so we no "
			                        "longer send anything to it.");
		return web_db_failed(s, c, &err, "confirm");
	} else if (cs != CONFIRM_OPEN) /* used meanwhile, by another request */
		rc = webpage_confirm_expired(&page, s->cfg->lang, title_of(&l), sub.email);
	else
		rc = webpage_confirmed(&page, s->cfg->lang, title_of(&l), sub.email);
	subscriber_clear(&sub);
	return web_queue_page_or_fail(s, c, rc, &page);
}

/* ---- sign-up ---- */

/* GET /subscribe/NAME: the form of a --signup list, posting to /subscribe
 * by a relative URL so that a proxy's path prefix stays; any other name is
 * a 404, as POST /subscribe treats it. */
enum MHD_Result
web_handle_signup_page(struct web_server *s, struct MHD_Connection *c,
                       const struct web_route *r)
{
	struct buf page = BUF_INIT(1u << 14);
	struct webpage_signup f;
	struct web_thread *t;
	struct herr err;
	struct list l;
	char name[65];

	herr_clear(&err);
	snprintf(name, sizeof name, "%.*s", (int)r->token_len, r->token);
	if (list_name_check(name, &err) < 0)
		return web_not_found(s, c);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (list_get(t->db, name, &l, &err) < 0 || !l.signup) {
		if (err.code == EX_NOINPUT || !err.code)
			return web_not_found(s, c);
		return web_db_failed(s, c, &err, "sign-up page");
	}
	memset(&f, 0, sizeof f);
	f.list_name = l.name;
	f.list_title = title_of(&l);
	f.consent_text = l.consent_text;  /* none set: the title above is what was shown */
	f.action = "../subscribe";
	f.tracking_shown = s->cfg->tracking_mode == CONFIG_TRACKING_CONSENT;
	return web_queue_page_or_fail(s, c, webpage_signup(&page, s->cfg->lang, &f), &page);
}

enum MHD_Result
web_handle_subscribe(struct web_server *s, struct MHD_Connection *c, const struct request *rq)
{
	const union MHD_ConnectionInfo *ci;
	struct buf page = BUF_INIT(1u << 16);
	struct web_form *form;
	struct web_thread *t;
	struct address a;
	struct list l;
	struct herr err;
	const char *email, *name, *list_name;
	char key[128], msg[HERR_MSG_MAX + 2], ip[CONSENT_IP_MAX];
	struct consent_ctx cc;
	struct signup_req req;
	struct signup_result res;
	/* the form's checkbox tracking_consent: the attribute tracking.h reads */
	static const struct tmpl_attr consent_yes = { "tracking_consent", "yes" };
	const char *tc;
	int rc;

	herr_clear(&err);
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	web_client_key(ci ? ci->client_addr : NULL,
	               MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Real-IP"),
	               s->cfg->proxies, s->cfg->n_proxies, key, sizeof key);
	if (!web_limiter_hit(s->ip_limit, key, web_mono_now()))
		return web_queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
		                      "Please wait a few minutes before signing up again.",
		                      MHD_HTTP_HEADER_RETRY_AFTER, "600");
	if (!(form = malloc(sizeof *form)))
		return MHD_NO;
	if (web_form_parse(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_CONTENT_TYPE),
	                   buf_str(&rq->body), rq->body.len, form) < 0) {
		free(form);
		return web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "The form could not be read",
		                    "Please go back and send it again.");
	}
	email = web_form_get(form, "email");
	name = web_form_get(form, "name");
	list_name = web_form_get(form, "list");
	if (!email || !*email) {
		free(form);
		return web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "Please give your e-mail address",
		                    "The form had no e-mail address.");
	}
	if (address_parse(email, &a, &err) < 0) {
		free(form);
		snprintf(msg, sizeof msg, "%s.", err.msg);
		msg[0] = (char)(msg[0] == 'i' ? 'I' : msg[0]);
		return web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "This address cannot be used", msg);
	}
	if (name && (utf8_invalid_at((const unsigned char *)name, strlen(name)) != strlen(name) ||
	             subscriber_check_text("the name", name, SUBSCRIBER_NAME_MAX, &err) < 0)) {
		free(form);
		snprintf(msg, sizeof msg, "%s.", err.code ? err.msg : "the name is not valid UTF-8");
		msg[0] = (char)(msg[0] == 't' ? 'T' : msg[0]);
		return web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "This name cannot be used", msg);
	}
	if (!list_name || list_name_check(list_name, &err) < 0) {
		free(form);
		return web_queue_notice(s, c, MHD_HTTP_NOT_FOUND, "No such list",
		                    "The form names a list we do not have.");
	}
	if (!(t = web_thread_db(s))) {
		free(form);
		return web_unavailable(s, c);
	}
	if (list_get(t->db, list_name, &l, &err) < 0 || !l.signup) {
		free(form);
		/* a list that takes no sign-ups is no list to the form */
		if (err.code == EX_NOINPUT || !err.code)
			return web_queue_notice(s, c, MHD_HTTP_NOT_FOUND, "No such list",
			                    "The form names a list we do not have.");
		return web_db_failed(s, c, &err, "subscribe");
	}
	/* counted before anything is looked up, so the answer is the same
	 * for a known, a blocked and a new address (invariant 6); on every
	 * list, since even a single opt-in sign-up mails someone who had left
	 * (subscriber.h rule 8) */
	if (!web_limiter_hit(s->addr_limit, a.key, web_mono_now())) {
		free(form);
		return web_queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
		                      "We have already sent several confirmation messages to this "
		                      "address today. Please look for them in your inbox.",
		                      MHD_HTTP_HEADER_RETRY_AFTER, "3600");
	}
	memset(&req, 0, sizeof req);
	req.addr = &a;
	req.name = name && *name ? name : NULL;
	req.source = SIGNUP_WEB;
	req.erased_key = &s->key;  /* subscriber.h rule (10) */
	/* ticked: any value but "no" (browsers send "on"); unticked, the form
	 * sends nothing and an earlier answer stands */
	if ((tc = web_form_get(form, "tracking_consent")) && *tc && strcasecmp(tc, "no")) {
		req.attrs = &consent_yes;
		req.n_attrs = 1;
	}
	web_consent_of(s, c, "web form", list_consent_shown(&l), ip, &cc);
	req.consent = &cc;
	rc = subscriber_signup(t->db, &l, &req, &res, &err);
	free(form);
	if (rc < 0)
		return web_db_failed(s, c, &err, "subscribe");
	/* the mail greets nobody by name: a form anyone can post must not
	 * carry their text into a stranger's inbox */
	if (res.confirm_mail &&
	    webmail_enqueue(s->mail, res.subscriber_id, res.confirm_id, &l, a.addr, "") < 0)
		return web_unavailable(s, c);
	if (l.double_opt_in)
		rc = webpage_check_inbox(&page, s->cfg->lang, title_of(&l), a.addr);
	else
		rc = webpage_subscribed(&page, s->cfg->lang, title_of(&l), a.addr);
	return web_queue_page_or_fail(s, c, rc, &page);
}

