/*
 * webprefs.c - herald serve's preference centre (GET and POST /p/TOKEN)
 * and the answers to the leaving survey (POST action=survey on /p/TOKEN
 * and /u/TOKEN), with the forms' nonce (include/herald/webprefs.h).
 *
 * The handlers only translate HTTP: the token names the reader (a
 * TOKEN_PREFERENCES from a mail's footer, message.c), the nonce proves the
 * POST came from a page served for that token lately, and every change is
 * one core call (prefs.h: prefs_save(), prefs_survey_record()) in one
 * transaction, written before the answer (web.c invariant 4).  GET and HEAD
 * change nothing (invariant 3).  A POST whose nonce is wrong, missing or
 * expired is refused with 403 and changes nothing.  The confirmation mails
 * a save asks for (a ticked double opt-in list, a new address) go through
 * the mail thread (webmail.c) and count against the same per-address
 * limit as the sign-up form; a new address also counts against the
 * per-client sign-up limit, as a sign-up does.
 */
#include "webint.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/address.h"
#include "herald/consent.h"
#include "herald/prefs.h"
#include "herald/subscriber.h"
#include "herald/webpages.h"
#include "herald/webprefs.h"

/* ---- the nonce (webprefs.h) ---- */

static int
nonce_of(const struct token_key *k, const char *token, size_t len, long long window,
         char out[WEBPREFS_NONCE_MAX])
{
	static const char hex[] = "0123456789abcdef", label[] = "herald-form-nonce";
	unsigned char mac[TOKEN_HMAC_LEN], in[sizeof label + TOKEN_MAX + 24];
	size_t used;
	int wl, i;

	if (len >= TOKEN_MAX)
		return -1;
	/* "herald-form-nonce" NUL TOKEN NUL WINDOW (webprefs.h) */
	memcpy(in, label, sizeof label);
	used = sizeof label;
	memcpy(in + used, token, len);
	used += len;
	in[used++] = '\0';
	wl = snprintf((char *)in + used, sizeof in - used, "%lld", window);
	if (wl < 0 || (size_t)wl >= sizeof in - used)
		return -1;
	used += (size_t)wl;
	if (token_hmac(k, in, used, mac) < 0)
		return -1;
	for (i = 0; i < WEBPREFS_NONCE_LEN / 2; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[WEBPREFS_NONCE_LEN] = '\0';
	return 0;
}

int
webprefs_nonce_make(const struct token_key *k, const char *token, size_t len, long long now,
                    char out[WEBPREFS_NONCE_MAX])
{
	return nonce_of(k, token, len, now / WEBPREFS_NONCE_WINDOW, out);
}

int
webprefs_nonce_check(const struct token_key *k, const char *token, size_t len,
                     const char *nonce, long long now)
{
	char want[WEBPREFS_NONCE_MAX];
	long long w = now / WEBPREFS_NONCE_WINDOW;
	int i, ok = 0;

	if (!nonce || strlen(nonce) != WEBPREFS_NONCE_LEN)
		return -1;
	/* its own window or the one after: one to two windows of life */
	for (i = 0; i < 2; i++)
		if (nonce_of(k, token, len, w - i, want) == 0 &&
		    CRYPTO_memcmp(want, nonce, WEBPREFS_NONCE_LEN) == 0)
			ok = 1;
	return ok ? 0 : -1;
}

/* ---- pages ---- */

static enum MHD_Result
refused(struct web_server *s, struct MHD_Connection *c)
{
	return web_queue_notice(s, c, MHD_HTTP_FORBIDDEN, "This page has expired",
	                        "Nothing was changed. Please open the link in your mail again "
	                        "and send the form from there.");
}

static enum MHD_Result
too_many(struct web_server *s, struct MHD_Connection *c)
{
	return web_queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
	                          "We have already sent several confirmation messages to this "
	                          "address today. Nothing was changed; please look for them in "
	                          "your inbox.", MHD_HTTP_HEADER_RETRY_AFTER, "3600");
}

/* The page of `sub` with `lists`, `notice` on top, maybe the survey. */
static enum MHD_Result
prefs_page(struct web_server *s, struct MHD_Connection *c, const struct web_route *r,
           const struct subscriber *sub, const struct prefs_list *lists, size_t n,
           const char *notice, int survey)
{
	struct webpage_pref_list pl[PREFS_LISTS_MAX];
	struct buf page = BUF_INIT(1u << 17);
	struct webpage_prefs p;
	char token[TOKEN_MAX], nonce[WEBPREFS_NONCE_MAX];
	size_t i;

	if (webprefs_nonce_make(&s->key, r->token, r->token_len, (long long)time(NULL), nonce) < 0)
		return web_unavailable(s, c);
	snprintf(token, sizeof token, "%.*s", (int)r->token_len, r->token);
	for (i = 0; i < n && i < PREFS_LISTS_MAX; i++) {
		pl[i].id = lists[i].id;
		pl[i].title = lists[i].title;
		pl[i].consent_text = lists[i].consent_text;
		pl[i].waiting = !strcmp(lists[i].status, "unconfirmed");
		pl[i].checked = pl[i].waiting || !strcmp(lists[i].status, "confirmed");
	}
	memset(&p, 0, sizeof p);
	p.email = sub->email;
	p.name = sub->name;
	p.token = token;
	p.nonce = nonce;
	p.lists = pl;
	p.n = i;
	p.notice = notice;
	p.survey = survey;
	if (s->cfg->tracking_mode == CONFIG_TRACKING_CONSENT) {
		struct herr err;
		struct web_thread *t = web_thread_db(s);

		p.tracking_shown = 1;
		if (!t || subscriber_tracking_consent(t->db, sub->id, &p.tracking_consent,
		                                      &err) < 0)
			return web_unavailable(s, c);
	}
	return web_queue_page_or_fail(s, c, webpage_preferences(&page, s->cfg->lang, &p), &page);
}

enum MHD_Result
web_survey_post(struct web_server *s, struct MHD_Connection *c, struct web_thread *t,
                const struct web_route *r, const struct token *tok,
                const struct web_form *form)
{
	struct herr err;
	size_t n;
	int reason;

	herr_clear(&err);
	if (webprefs_nonce_check(&s->key, r->token, r->token_len,
	                         web_form_get(form, WEBPREFS_NONCE_FIELD), (long long)time(NULL)) < 0)
		return refused(s, c);
	if ((reason = prefs_reason_parse(web_form_get(form, "reason"))) < 0)
		return web_queue_notice(s, c, MHD_HTTP_OK, "No answer given",
		                        "You chose no reason, so nothing was stored. You stay "
		                        "unsubscribed.");
	if (prefs_survey_record(t->db, (long long)tok->subscriber_id, (long long)tok->issue_id,
	                        (enum prefs_reason)reason, web_form_get(form, "note"), &n,
	                        &err) < 0) {
		if (err.code == EX_NOINPUT)
			return web_queue_notice(s, c, MHD_HTTP_OK, "Nothing to answer about",
			                        "This address has not left a list lately, so nothing "
			                        "was stored.");
		if (err.code == EX_DATAERR)
			return web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "This answer cannot be "
			                        "stored", "The text was too long or not readable. "
			                        "Nothing was stored; you stay unsubscribed.");
		return web_db_failed(s, c, &err, "survey");
	}
	return web_queue_notice(s, c, MHD_HTTP_OK, "Thank you",
	                        "Your answer was stored. You stay unsubscribed.");
}

/* The ids of the lists ticked on the form (fields "list"); -1 for a value
 * that is not one. */
static int
ticked_lists(const struct web_form *form, long long *ids, size_t *n)
{
	size_t i;
	char *end;
	long long v;

	*n = 0;
	for (i = 0; i < form->n; i++) {
		if (strcmp(form->f[i].name, "list"))
			continue;
		v = strtoll(form->f[i].value, &end, 10);
		if (*end || end == form->f[i].value || v <= 0)
			return -1;
		if (*n < PREFS_LISTS_MAX)
			ids[(*n)++] = v;
	}
	return 0;
}

/* Queue the mails a save asked for; -1 when the mail queue refused one. */
static int
send_mails(struct web_server *s, struct web_thread *t, const struct prefs_result *res,
           const struct subscriber *sub, const struct address *new_addr)
{
	struct herr err;
	struct list l;
	size_t i;
	int ret = 0;

	for (i = 0; i < res->n_mails; i++) {
		const struct prefs_mail *m = &res->mails[i];

		herr_clear(&err);
		if (list_get_by_id(t->db, m->list_id, &l, &err) < 0) {
			web_log(s, "preferences: %s", err.msg);
			ret = -1;
			continue;
		}
		/* the mail greets nobody by name, as the sign-up form's */
		if (webmail_enqueue(s->mail, m->subscriber_id, m->confirm_id, &l,
		                    m->new_address ? new_addr->addr : sub->email, "") < 0)
			ret = -1;
	}
	return ret;
}

enum MHD_Result
web_handle_preferences(struct web_server *s, struct MHD_Connection *c, enum web_method m,
                       const struct web_route *r, const struct request *rq)
{
	const union MHD_ConnectionInfo *ci;
	struct prefs_list *lists = NULL;
	long long ticked[PREFS_LISTS_MAX];
	struct prefs_result *res = NULL;
	struct web_form *form = NULL;
	struct prefs_change ch;
	struct consent_ctx cc;
	struct subscriber sub;
	struct address mine, to;
	struct web_thread *t;
	struct token tok;
	struct herr err;
	const char *action, *name, *email, *notice;
	char key[128], msg[HERR_MSG_MAX + 64], ip[CONSENT_IP_MAX];
	enum MHD_Result ret;
	size_t n = 0;
	int new_address = 0;

	herr_clear(&err);
	if (web_check_token(s, r->token, r->token_len, TOKEN_PREFERENCES, &tok) < 0)
		return web_not_found(s, c);
	if (!(t = web_thread_db(s)))
		return web_unavailable(s, c);
	if (prefs_lists(t->db, (long long)tok.subscriber_id, &lists, &n, &err) < 0)
		return web_db_failed(s, c, &err, "preferences");
	if (subscriber_get_by_id(t->db, (long long)tok.subscriber_id, &sub, &err) < 0) {
		free(lists);
		return web_db_failed(s, c, &err, "preferences");
	}
	if (m != WEB_POST) {
		ret = prefs_page(s, c, r, &sub, lists, n, NULL, 0);
		goto out;
	}
	if (!(form = malloc(sizeof *form)) || !(res = malloc(sizeof *res))) {
		ret = MHD_NO;
		goto out;
	}
	if (web_form_parse(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_CONTENT_TYPE),
	                   buf_str(&rq->body), rq->body.len, form) < 0) {
		ret = web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "The form could not be read",
		                       "Nothing was changed. Please go back and send it again.");
		goto out;
	}
	if (webprefs_nonce_check(&s->key, r->token, r->token_len,
	                         web_form_get(form, WEBPREFS_NONCE_FIELD),
	                         (long long)time(NULL)) < 0) {
		ret = refused(s, c);
		goto out;
	}
	action = web_form_get(form, "action");
	if (action && !strcmp(action, "survey")) {
		ret = web_survey_post(s, c, t, r, &tok, form);
		goto out;
	}
	memset(&ch, 0, sizeof ch);
	ch.erased_key = &s->key;  /* subscriber.h rule (10) */
	web_consent_of(s, c, "preferences", NULL, ip, &cc);
	ch.consent = &cc;
	ch.subscriber_id = sub.id;
	ch.tracking_consent = -1;
	if (action && !strcmp(action, "leave_all"))
		ch.leave_all = 1;
	else {
		/* the checkbox is on the page only in consent mode: an unticked
		 * box sends nothing, so its absence withdraws the consent */
		if (s->cfg->tracking_mode == CONFIG_TRACKING_CONSENT)
			ch.tracking_consent = web_form_get(form, "tracking_consent") != NULL;
		name = web_form_get(form, "name");
		email = web_form_get(form, "email");
		if (ticked_lists(form, ticked, &ch.n_ticked) < 0) {
			ret = web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "The form could not be read",
			                       "Nothing was changed. Please go back and send it again.");
			goto out;
		}
		ch.ticked = ticked;
		if (name && strcmp(name, sub.name))
			ch.name = name;
		if (address_parse(sub.email, &mine, &err) < 0) {
			ret = web_db_failed(s, c, &err, "preferences");
			goto out;
		}
		if (email && *email) {
			if (address_parse(email, &to, &err) < 0) {
				snprintf(msg, sizeof msg, "Nothing was changed: %s.", err.msg);
				ret = web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST,
				                       "This address cannot be used", msg);
				goto out;
			}
			new_address = strcmp(to.key, mine.key) != 0;
		}
		/* the limits of the sign-up form, counted before anything is
		 * written, so a refused save changes nothing */
		if (new_address) {
			ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
			web_client_key(ci ? ci->client_addr : NULL,
			               MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Real-IP"),
			               s->cfg->proxies, s->cfg->n_proxies, key, sizeof key);
			if (!web_limiter_hit(s->ip_limit, key, web_mono_now()) ||
			    !web_limiter_hit(s->addr_limit, to.key, web_mono_now())) {
				ret = too_many(s, c);
				goto out;
			}
			ch.new_addr = &to;
		}
		if (prefs_needs_mail(lists, n, &ch) &&
		    !web_limiter_hit(s->addr_limit, mine.key, web_mono_now())) {
			ret = too_many(s, c);
			goto out;
		}
	}
	if (prefs_save(t->db, lists, n, &ch, res, &err) < 0) {
		if (err.code == EX_DATAERR) {
			snprintf(msg, sizeof msg, "Nothing was changed: %s.", err.msg);
			ret = web_queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "This name cannot be used",
			                       msg);
		} else
			ret = web_db_failed(s, c, &err, "preferences");
		goto out;
	}
	if (send_mails(s, t, res, &sub, ch.new_addr) < 0) {
		ret = web_unavailable(s, c);
		goto out;
	}
	/* the page as it is now */
	free(lists);
	lists = NULL;
	subscriber_clear(&sub);
	if (prefs_lists(t->db, (long long)tok.subscriber_id, &lists, &n, &err) < 0 ||
	    subscriber_get_by_id(t->db, (long long)tok.subscriber_id, &sub, &err) < 0) {
		free(lists);
		free(form);
		free(res);
		return web_db_failed(s, c, &err, "preferences");
	}
	if (ch.leave_all)
		notice = "You have been unsubscribed from every list.";
	else if (new_address)
		notice = "Your choices are saved. We have sent a message to the new address: "
		         "open the link in it to receive your lists there.";
	else if (res->n_mails)
		notice = "Your choices are saved. We have sent you a message: open the link in "
		         "it to confirm the lists you ticked.";
	else
		notice = "Your choices are saved.";
	ret = prefs_page(s, c, r, &sub, lists, n, notice, res->left > 0);
out:
	free(lists);
	free(form);
	free(res);
	subscriber_clear(&sub);
	return ret;
}
