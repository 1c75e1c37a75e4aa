/*
 * message.c - building one recipient's message from a prepared issue
 * (see message.h).  RFC 2919 (List-Id), RFC 2369 (List-Unsubscribe).
 */
#include "herald/message.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/mime.h"
#include "herald/tracking.h"

int
message_id_for(const struct token_key *key, const char *domain, long long issue_id,
               long long subscriber_id, char *out, size_t size)
{
	unsigned char mac[TOKEN_HMAC_LEN];
	char ids[64];
	int len;

	len = snprintf(ids, sizeof ids, "message-id:%lld.%lld", issue_id, subscriber_id);
	if (token_hmac(key, ids, (size_t)len, mac) < 0)
		return -1;
	len = snprintf(out, size, "%lld.%lld.%02x%02x%02x%02x@%s", issue_id, subscriber_id,
	               mac[0], mac[1], mac[2], mac[3], domain);
	return (len < 0 || (size_t)len >= size) ? -1 : 0;
}

int
message_unsubscribe_url(const struct config *cfg, const struct token_key *key,
                        long long subscriber_id, long long list_id, long long issue_id,
                        char *out, size_t size)
{
	struct token t = { TOKEN_UNSUBSCRIBE, (unsigned long long)subscriber_id,
	                   (unsigned long long)list_id, (unsigned long long)issue_id };
	char tok[TOKEN_MAX];
	int len;

	if (token_make(key, &t, tok) < 0)
		return -1;
	len = snprintf(out, size, "%s/u/%s", cfg->base_url, tok);
	return (len < 0 || (size_t)len >= size) ? -1 : 0;
}

int
message_preferences_url(const struct config *cfg, const struct token_key *key,
                        long long subscriber_id, long long list_id, long long issue_id,
                        char *out, size_t size)
{
	struct token t = { TOKEN_PREFERENCES, (unsigned long long)subscriber_id,
	                   (unsigned long long)list_id, (unsigned long long)issue_id };
	char tok[TOKEN_MAX];
	int len;

	if (token_make(key, &t, tok) < 0)
		return -1;
	len = snprintf(out, size, "%s/p/%s", cfg->base_url, tok);
	return (len < 0 || (size_t)len >= size) ? -1 : 0;
}

int
message_dkim_open(const struct config *cfg, struct dkim_signer **out, struct herr *err)
{
	struct dkim_signer *s;

	*out = NULL;
	if (!cfg->dkim_key)
		return 0;
	if (dkim_signer_new(&s, err) < 0)
		return -1;
	if (dkim_signer_add_key(s, DKIM_RSA_SHA256, cfg->dkim_domain, cfg->dkim_selector,
	                        cfg->dkim_key, NULL, err) < 0 ||
	    (cfg->dkim_ed_key &&
	     dkim_signer_add_key(s, DKIM_ED25519_SHA256, cfg->dkim_domain, cfg->dkim_ed_selector,
	                         cfg->dkim_ed_key, NULL, err) < 0)) {
		dkim_signer_free(s);
		return -1;
	}
	dkim_signer_set_expiry(s, cfg->dkim_expire);
	*out = s;
	return 0;
}

int
message_envelope_from(const struct config *cfg, const struct token_key *key,
                      long long subscriber_id, long long list_id, long long issue_id,
                      char *out, size_t size)
{
	struct token t = { TOKEN_BOUNCE, (unsigned long long)subscriber_id,
	                   (unsigned long long)list_id, (unsigned long long)issue_id };
	const char *addr = cfg->return_addr.ascii, *at = strrchr(addr, '@');
	char tok[TOKEN_MAX];
	int len;

	if (!cfg->verp || !at) {
		len = snprintf(out, size, "%s", addr);
		return (len < 0 || (size_t)len >= size) ? -1 : 0;
	}
	if (token_make(key, &t, tok) < 0)
		return -1;
	/* RFC 5321 §4.5.3.1.1: the local part stays within 64 octets */
	if ((size_t)(at - addr) + 1 + strlen(tok) > 64)
		return -1;
	len = snprintf(out, size, "%.*s+%s%s", (int)(at - addr), addr, tok, at);
	return (len < 0 || (size_t)len >= size) ? -1 : 0;
}

static int
compile(const char *text, const char *where, struct tmpl **out, struct herr *err)
{
	return tmpl_compile(text, strlen(text), where, 1, out, err);
}

/* List-Id: "Title" <name.domain> (RFC 2919 §3); the phrase only when it is
 * plain printable ASCII, which keeps the header simple and always valid. */
static void
make_list_id(struct message_ctx *m)
{
	const unsigned char *p;
	char phrase[300];
	size_t o = 0;
	int ascii = m->list_title[0] != '\0';

	for (p = (const unsigned char *)m->list_title; *p && ascii; p++)
		if (*p < 0x20 || *p > 0x7e)
			ascii = 0;
	if (ascii) {
		phrase[o++] = '"';
		for (p = (const unsigned char *)m->list_title; *p && o < sizeof phrase - 4; p++) {
			if (*p == '"' || *p == '\\')
				phrase[o++] = '\\';
			phrase[o++] = (char)*p;
		}
		phrase[o++] = '"';
		phrase[o++] = ' ';
	}
	phrase[o] = '\0';
	snprintf(m->list_id_value, sizeof m->list_id_value, "%s<%s.%s>", phrase, m->list_name,
	         m->cfg->message_id_domain);
}

/* Decode the few entities cmark writes into an href, for comparing. */
static size_t
href_decode(const char *s, size_t n, char *out, size_t size)
{
	static const struct { const char *ent; char c; } ents[] = {
		{ "&amp;", '&' }, { "&#x27;", '\'' }, { "&quot;", '"' }, { "&lt;", '<' },
		{ "&gt;", '>' },
	};
	size_t i = 0, o = 0, e;

	while (i < n && o + 1 < size) {
		for (e = 0; e < sizeof ents / sizeof ents[0]; e++) {
			size_t k = strlen(ents[e].ent);

			if (n - i >= k && !memcmp(s + i, ents[e].ent, k)) {
				out[o++] = ents[e].c;
				i += k;
				break;
			}
		}
		if (e == sizeof ents / sizeof ents[0])
			out[o++] = s[i++];
	}
	out[o] = '\0';
	return o;
}

static int
is_web_url(const char *u)
{
	return !strncasecmp(u, "https://", 8) || !strncasecmp(u, "http://", 7);
}

/*
 * Put {{link.N}} where the stored parts have the issue's Nth link: in the
 * HTML as href="..." of an <a> (not images: their src stays), in the text
 * part on its "[N] URL" line (merged there with the destination itself,
 * see message_merge()).  Only http(s) links; a mailto stays direct.
 */
static int
mark_links(const struct message_ctx *m, const char *src, int html, struct buf *out)
{
	const char *p = src, *q, *end;
	char dec[2048], line[64];
	size_t i, n;

	if (!html) {
		while (*p) {
			q = strchr(p, '\n');
			end = q ? q + 1 : p + strlen(p);
			for (i = 0; i < m->n_links; i++) {
				n = (size_t)snprintf(line, sizeof line, "[%zu] ", i + 1);
				if ((size_t)(end - p) == n + strlen(m->links[i]) + (q != NULL) &&
				    !strncmp(p, line, n) && !strncmp(p + n, m->links[i], strlen(m->links[i])) &&
				    is_web_url(m->links[i]))
					break;
			}
			if (i < m->n_links) {
				if (buf_addf(out, "[%zu] {{link.%zu}}%s", i + 1, i + 1, q ? "\n" : "") < 0)
					return -1;
			} else if (buf_add(out, p, (size_t)(end - p)) < 0)
				return -1;
			p = end;
		}
		return 0;
	}
	while ((q = strstr(p, "<a href=\""))) {
		q += 9;
		end = strchr(q, '"');
		if (!end)
			break;
		if (buf_add(out, p, (size_t)(q - p)) < 0)
			return -1;
		href_decode(q, (size_t)(end - q), dec, sizeof dec);
		for (i = 0; i < m->n_links; i++)
			if (is_web_url(m->links[i]) && !strcmp(dec, m->links[i]))
				break;
		if (i < m->n_links) {
			if (buf_addf(out, "{{link.%zu}}", i + 1) < 0)
				return -1;
		} else if (buf_add(out, q, (size_t)(end - q)) < 0)
			return -1;
		p = end;
	}
	return buf_adds(out, p);
}

static int
load_links(struct message_ctx *m, const char *json, struct herr *err)
{
	json_t *a = json_loads(json && *json ? json : "[]", 0, NULL);
	size_t i;
	char what[32];

	if (!a || !json_is_array(a)) {
		json_decref(a);
		return herr_set(err, EX_SOFTWARE, NULL, "issue %lld: stored links are not a list",
		                m->issue_id);
	}
	m->n_links = json_array_size(a);
	m->links = calloc(m->n_links + 1, sizeof *m->links);
	m->link_tmpl = calloc(m->n_links + 1, sizeof *m->link_tmpl);
	if (!m->links || !m->link_tmpl) {
		json_decref(a);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	for (i = 0; i < m->n_links; i++) {
		const char *u = json_string_value(json_array_get(a, i));

		if (!(m->links[i] = strdup(u ? u : ""))) {
			json_decref(a);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		snprintf(what, sizeof what, "link %zu", i + 1);
		if (compile(m->links[i], what, &m->link_tmpl[i], err) < 0) {
			json_decref(a);
			return -1;
		}
	}
	json_decref(a);
	return 0;
}

int
message_ctx_init(struct message_ctx *m, const struct config *cfg,
                 const struct token_key *key, const struct issue *is,
                 const struct list *l, struct herr *err)
{
	struct buf html = BUF_INIT(MESSAGE_MAX), text = BUF_INIT(MESSAGE_MAX);
	int rc;

	memset(m, 0, sizeof *m);
	m->cfg = cfg;
	m->key = key;
	m->issue_id = is->id;
	m->list_id = is->list_id;
	m->tracking = is->tracking;
	m->tracking_mode = is->tracking ? CONFIG_TRACKING_ON : CONFIG_TRACKING_OFF;
	m->public_list = l->public;
	snprintf(m->list_name, sizeof m->list_name, "%s", is->list_name);
	snprintf(m->list_title, sizeof m->list_title, "%s", l->title[0] ? l->title : l->name);
	snprintf(m->from_name, sizeof m->from_name, "%s", is->from_name);
	if (address_parse(is->from_addr, &m->from, err) < 0)
		return herr_wrap(err, "issue %lld: sender", is->id);
	if (is->reply_to[0]) {
		if (address_parse_mailbox(is->reply_to, m->reply_to_name, sizeof m->reply_to_name,
		                          &m->reply_to, err) < 0)
			return herr_wrap(err, "issue %lld: reply-to", is->id);
		m->has_reply_to = 1;
	}
	make_list_id(m);
	if (load_links(m, is->links, err) < 0) {
		message_ctx_free(m);
		return -1;
	}
	if (mark_links(m, is->html, 1, &html) < 0 || mark_links(m, is->text, 0, &text) < 0) {
		buf_free(&html);
		buf_free(&text);
		message_ctx_free(m);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	rc = compile(is->subject, "subject", &m->subject, err) < 0 ||
	     compile(buf_str(&html), "stored HTML part", &m->html, err) < 0 ||
	     compile(buf_str(&text), "stored text part", &m->text, err) < 0;
	buf_free(&html);
	buf_free(&text);
	if (rc) {
		message_ctx_free(m);
		return -1;
	}
	return 0;
}

void
message_ctx_free(struct message_ctx *m)
{
	size_t i;

	tmpl_free(m->subject);
	tmpl_free(m->html);
	tmpl_free(m->text);
	m->subject = m->html = m->text = NULL;
	for (i = 0; i < m->n_links; i++) {
		free(m->links ? m->links[i] : NULL);
		tmpl_free(m->link_tmpl ? m->link_tmpl[i] : NULL);
	}
	free(m->links);
	free(m->link_tmpl);
	m->links = NULL;
	m->link_tmpl = NULL;
	m->n_links = 0;
}

int
message_tracking_refused(const char *json)
{
	json_t *o, *v;
	const char *s;
	int refused = 0;

	if (!json || !strstr(json, "tracking"))
		return 0; /* the common case, without parsing */
	if (!(o = json_loads(json, 0, NULL)))
		return 0;
	v = json_object_get(o, "tracking");
	if (json_is_string(v)) {
		s = json_string_value(v);
		refused = !strcasecmp(s, "no") || !strcasecmp(s, "off") ||
		          !strcasecmp(s, "false") || !strcmp(s, "0");
	}
	json_decref(o);
	return refused;
}

int
message_view_url(const struct config *cfg, const struct token_key *key, long long issue_id,
                 long long list_id, int public_list, char *out, size_t size)
{
	struct token t = { TOKEN_VIEW, 0, (unsigned long long)list_id,
	                   (unsigned long long)issue_id };
	char tok[TOKEN_MAX];
	int len;

	if (public_list)
		len = snprintf(out, size, "%s/archive/%lld", cfg->base_url, issue_id);
	else {
		if (token_make(key, &t, tok) < 0)
			return -1;
		len = snprintf(out, size, "%s/archive/%lld/%s", cfg->base_url, issue_id, tok);
	}
	return (len < 0 || (size_t)len >= size) ? -1 : 0;
}

int
message_load_attrs(const char *json, json_t **obj, struct tmpl_attr **attrs, size_t *n)
{
	const char *k;
	json_t *v;
	size_t i = 0;

	*obj = NULL;
	*attrs = NULL;
	*n = 0;
	if (!json || !*json || !strcmp(json, "{}"))
		return 0;
	if (!(*obj = json_loads(json, 0, NULL)) || !json_is_object(*obj))
		return -1;
	if (!(*attrs = calloc(json_object_size(*obj) + 1, sizeof **attrs)))
		return -1;
	json_object_foreach(*obj, k, v) {
		(*attrs)[i].key = k;
		(*attrs)[i].value = json_is_string(v) ? json_string_value(v) : "";
		i++;
	}
	*n = i;
	return 0;
}

/* `s` with its spaces turned into line breaks where a line would pass
 * `width` characters (UTF-8 code points); a longer word stays whole. */
static int
wrap_words(const char *s, size_t width, struct buf *out)
{
	size_t col = 0, wlen, wcols, i;
	const char *w;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		for (w = s, wlen = 0; w[wlen] && w[wlen] != ' '; wlen++)
			;
		for (i = 0, wcols = 0; i < wlen; i++)
			wcols += ((unsigned char)w[i] & 0xc0) != 0x80;
		if (col && buf_addc(out, col + 1 + wcols > width ? '\n' : ' ') < 0)
			return -1;
		col = col && col + 1 + wcols <= width ? col + 1 + wcols : wcols;
		if (buf_add(out, w, wlen) < 0)
			return -1;
		s = w + wlen;
	}
	return 0;
}

int
message_lists_phrase(const char *joined, struct buf *out)
{
	const char *p = joined, *sep;
	size_t n = 1, i = 0;

	for (sep = joined; (sep = strchr(sep, '\x1f')); sep++)
		n++;
	for (;;) {
		sep = strchr(p, '\x1f');
		if (i && buf_adds(out, i + 1 == n ? " and " : ", ") < 0)
			return -1;
		if (buf_add(out, p, sep ? (size_t)(sep - p) : strlen(p)) < 0)
			return -1;
		if (!sep)
			return 0;
		p = sep + 1;
		i++;
	}
}

int
message_merge(const struct message_ctx *m, const struct message_recipient *r,
              struct buf *subject, struct buf *html, struct buf *text, struct herr *err)
{
	struct token t = { TOKEN_CLICK, (unsigned long long)r->subscriber_id,
	                   (unsigned long long)m->list_id, (unsigned long long)m->issue_id };
	char unsub[512], prefs[512], view[512], pixel[700], tok[TOKEN_MAX], **links = NULL;
	struct buf lb = BUF_INIT(1u << 20), why = BUF_INIT(1u << 16),
	           why_text = BUF_INIT(1u << 16);
	struct tmpl_vars v;
	json_t *obj = NULL;
	struct tmpl_attr *attrs = NULL;
	size_t n_attrs = 0, i;
	int ret = -1, tracked;
	enum tracking_copy how;

	if (message_unsubscribe_url(m->cfg, m->key, r->subscriber_id, m->list_id, m->issue_id,
	                            unsub, sizeof unsub) < 0 ||
	    message_preferences_url(m->cfg, m->key, r->subscriber_id, m->list_id, m->issue_id,
	                            prefs, sizeof prefs) < 0 ||
	    message_view_url(m->cfg, m->key, m->issue_id, m->list_id, m->public_list, view,
	                     sizeof view) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make the message's links");
	/* A copy for nobody in particular (the web archive, a preview) has no
	 * one to unsubscribe: its link goes to the archive instead of a 404. */
	if (!r->subscriber_id) {
		snprintf(unsub, sizeof unsub, "%s/archive", m->cfg->base_url);
		snprintf(prefs, sizeof prefs, "%s/archive", m->cfg->base_url);
	}
	if (message_load_attrs(r->attributes, &obj, &attrs, &n_attrs) < 0) {
		herr_set(err, EX_DATAERR, r->email, "subscriber attributes are not a JSON object");
		goto out;
	}
	memset(&v, 0, sizeof v);
	v.name = r->name;
	v.email = r->email;
	v.unsubscribe_url = unsub;
	v.preferences_url = prefs;
	v.attrs = attrs;
	v.n_attrs = n_attrs;
	v.view_url = view;
	if (message_lists_phrase(r->lists && r->lists[0] ? r->lists : m->list_title, &why) < 0) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	v.lists = buf_str(&why);
	/* Only real deliveries are tracked: not previews, not test sends, not
	 * a stand-in recipient (id 0); the issue, the mode and the person
	 * decide together, the strictest winning (tracking.h).  An anonymous
	 * copy's tokens name no one: subscriber 0, a kind of their own. */
	how = tracking_decide(m->tracking, m->tracking_mode, r->subscriber_id, r->untracked,
	                      r->attributes);
	tracked = how != TRACKING_NONE;
	if (how == TRACKING_ANONYMOUS) {
		t.kind = TOKEN_CLICK_ANON;
		t.subscriber_id = 0;
	}
	pixel[0] = '\0';
	if (tracked) {
		if (token_make(m->key, &t, tok) < 0) {
			herr_set(err, EX_SOFTWARE, NULL, "cannot make the tracking token");
			goto out;
		}
		t.kind = how == TRACKING_ANONYMOUS ? TOKEN_OPEN_ANON : TOKEN_OPEN;
		{
			char otok[TOKEN_MAX];

			if (token_make(m->key, &t, otok) < 0) {
				herr_set(err, EX_SOFTWARE, NULL, "cannot make the tracking token");
				goto out;
			}
			snprintf(pixel, sizeof pixel, "<img src=\"%s/o/%s.gif\" width=\"1\" height=\"1\" "
			         "alt=\"\" style=\"display:block;width:1px;height:1px;border:0;\">",
			         m->cfg->base_url, otok);
		}
	}
	v.open_pixel = pixel;
	/*
	 * Each link's target, merged for this subscriber: links[0..n) as the
	 * HTML part shows them (through /c/TOKEN/N when tracked), and
	 * links[n..2n) as the text part lists them, always the destination
	 * itself.  A plain-text reader cannot hover over a link to see where it
	 * goes, and a redirect URL in its place reads like the phishing mail
	 * people are taught to distrust; the price is that clicks from text-only
	 * readers are not counted.
	 */
	if (m->n_links) {
		size_t *off = calloc(2 * m->n_links, sizeof *off);

		if (!(links = calloc(2 * m->n_links, sizeof *links)) || !off) {
			free(off);
			herr_set(err, EX_OSERR, NULL, "out of memory");
			goto out;
		}
		for (i = 0; i < 2 * m->n_links; i++) {
			size_t k = i % m->n_links;

			off[i] = lb.len;
			/* a link with merge fields is the reader's own: an
			 * anonymous redirect could not rebuild it, so it goes direct */
			if ((i < m->n_links && tracked && is_web_url(m->links[k]) &&
			     (how == TRACKING_PERSON || !strstr(m->links[k], "{{")))
			        ? buf_addf(&lb, "%s/c/%s/%zu", m->cfg->base_url, tok, k + 1)
			        : tmpl_merge(m->link_tmpl[k], &v, TMPL_URL, &lb)) {
				free(off);
				herr_set(err, EX_OSERR, NULL, "out of memory");
				goto out;
			}
			if (buf_addc(&lb, '\0') < 0) {
				free(off);
				herr_set(err, EX_OSERR, NULL, "out of memory");
				goto out;
			}
		}
		for (i = 0; i < 2 * m->n_links; i++)
			links[i] = lb.data + off[i];
		free(off);
		v.links = (const char *const *)links;
		v.n_links = m->n_links;
	}
	/* a subject test's recipient gets their variant's subject */
	if (tmpl_merge(r->variant > 0 && (size_t)r->variant <= m->n_variants ?
	               m->variants[r->variant - 1] : m->subject, &v, TMPL_RAW, subject) < 0 ||
	    tmpl_merge(m->html, &v, TMPL_HTML, html) < 0) {
		herr_set(err, EX_SOFTWARE, r->email, "message too large or out of memory");
		goto out;
	}
	if (m->n_links)
		v.links = (const char *const *)links + m->n_links;
	/* the text footer keeps to 72 columns: the templates give the lists
	 * a line of their own, followed by a full stop */
	if (wrap_words(buf_str(&why), 71, &why_text) < 0) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	v.lists = buf_str(&why_text);
	if (tmpl_merge(m->text, &v, TMPL_RAW, text) < 0) {
		herr_set(err, EX_SOFTWARE, r->email, "message too large or out of memory");
		goto out;
	}
	ret = 0;
out:
	free(links);
	buf_free(&lb);
	buf_free(&why);
	buf_free(&why_text);
	free(attrs);
	json_decref(obj);
	return ret;
}

int
message_build(const struct message_ctx *m, const struct message_recipient *r,
              enum message_kind kind, long long now, struct buf *out,
              struct message_out *mo, struct herr *err)
{
	char unsub[512], unsub_field[1200], feedback[300], tok[TOKEN_MAX];
	struct buf subject = BUF_INIT(1u << 16), html = BUF_INIT(MESSAGE_MAX),
	           text = BUF_INIT(MESSAGE_MAX);
	struct token t = { TOKEN_UNSUBSCRIBE, (unsigned long long)r->subscriber_id,
	                   (unsigned long long)m->list_id, (unsigned long long)m->issue_id };
	struct mime_field extra[6];
	struct mime_message mm;
	size_t n_extra = 0;
	int ret = -1;

	buf_reset(out);
	if (address_parse(r->email, &mo->rcpt, err) < 0)
		return -1;
	if (kind == MESSAGE_TEST) {
		unsigned char rnd[6];

		if (RAND_bytes(rnd, sizeof rnd) != 1)
			return herr_set(err, EX_OSERR, NULL, "no randomness for a test Message-ID");
		snprintf(mo->message_id, sizeof mo->message_id,
		         "test.%lld.%02x%02x%02x%02x%02x%02x@%s", m->issue_id, rnd[0], rnd[1],
		         rnd[2], rnd[3], rnd[4], rnd[5], m->cfg->message_id_domain);
	} else if (message_id_for(m->key, m->cfg->message_id_domain, m->issue_id,
	                          r->subscriber_id, mo->message_id, sizeof mo->message_id) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make a Message-ID");
	if (message_unsubscribe_url(m->cfg, m->key, r->subscriber_id, m->list_id, m->issue_id,
	                            unsub, sizeof unsub) < 0 || token_make(m->key, &t, tok) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make the unsubscribe URL");
	if (kind == MESSAGE_TEST)
		snprintf(mo->mail_from, sizeof mo->mail_from, "%s", m->cfg->return_addr.ascii);
	else if (message_envelope_from(m->cfg, m->key, r->subscriber_id, m->list_id,
	                               m->issue_id, mo->mail_from, sizeof mo->mail_from) < 0)
		return herr_set(err, EX_CONFIG, NULL,
		                "cannot make the VERP envelope sender from '%s' (local part too "
		                "long?)", m->cfg->return_addr.ascii);
	/* the merged subject as it is, however long (mime.c folds it) */
	if (kind == MESSAGE_TEST && buf_adds(&subject, "[TEST] ") < 0) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	if (message_merge(m, r, &subject, &html, &text, err) < 0)
		goto out;

	extra[n_extra].name = "List-Id";
	extra[n_extra++].value = m->list_id_value;
	/* RFC 2369: the https URL first (RFC 8058 needs it for one-click), then
	 * a mailto for clients that only do mail; both carry the same token. */
	snprintf(unsub_field, sizeof unsub_field, "<%s>, <mailto:unsubscribe+%s@%s>", unsub, tok,
	         m->cfg->return_addr.domain);
	extra[n_extra].name = "List-Unsubscribe";
	extra[n_extra++].value = unsub_field;
	if (kind == MESSAGE_ISSUE) {
		/* RFC 8058 §3.1: only list mail offers one-click; a test copy
		 * says what it is in its subject instead */
		extra[n_extra].name = "List-Unsubscribe-Post";
		extra[n_extra++].value = "List-Unsubscribe=One-Click";
	}
	/* Gmail's Feedback Loop: CampaignId:CustomerId:MailType:SenderId */
	snprintf(feedback, sizeof feedback, "%lld:%s:newsletter:%s", m->issue_id, m->list_name,
	         m->cfg->feedback_id ? m->cfg->feedback_id : "herald");
	extra[n_extra].name = "Feedback-ID";
	extra[n_extra++].value = feedback;

	memset(&mm, 0, sizeof mm);
	mm.from_name = m->from_name;
	mm.from_addr = m->from.ascii;
	mm.to_name = r->name;
	mm.to_addr = mo->rcpt.ascii;
	if (m->has_reply_to) {
		mm.reply_to_name = m->reply_to_name;
		mm.reply_to_addr = m->reply_to.ascii;
	}
	mm.subject = buf_str(&subject);
	mm.date = (time_t)now;
	mm.message_id = mo->message_id;
	mm.extra = extra;
	mm.n_extra = n_extra;
	mm.text = text.data;
	mm.text_len = text.len;
	mm.html = html.data;
	mm.html_len = html.len;
	if (mime_write_alternative(out, &mm, err) < 0) {
		herr_wrap(err, "%s", mo->rcpt.ascii);
		goto out;
	}
	if (m->dkim && dkim_sign(m->dkim, out, now, err) < 0)
		goto out;
	ret = 0;
out:
	buf_free(&subject);
	buf_free(&html);
	buf_free(&text);
	return ret;
}

int
message_build_confirm(const struct config *cfg, const struct token_key *key,
                      const struct dkim_signer *dkim, const struct list *l,
                      long long subscriber_id, long long confirm_id, const char *email,
                      const char *name, long long now, struct buf *out,
                      struct message_out *mo, struct herr *err)
{
	struct token t = { TOKEN_CONFIRM, (unsigned long long)subscriber_id,
	                   (unsigned long long)l->id, (unsigned long long)confirm_id };
	const char *title = l->title[0] ? l->title : l->name;
	char tok[TOKEN_MAX], url[600], subject[400];
	struct buf text = BUF_INIT(1u << 16), html = BUF_INIT(1u << 16);
	int ret = -1;

	buf_reset(out);
	if (address_parse(email, &mo->rcpt, err) < 0)
		return -1;
	if (token_make(key, &t, tok) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make the confirmation token");
	snprintf(url, sizeof url, "%s/confirm/%s", cfg->base_url, tok);
	snprintf(subject, sizeof subject, "Please confirm your subscription to %s", title);
	if (buf_addf(&text, "Hello%s%s,\n\nsomeone, we hope you, asked to receive %s at\n%s.\n\n"
	             "To confirm, open this link:\n\n%s\n\nIf it was not you, ignore this "
	             "mail: without confirmation you will get nothing more from us.\n\n-- \n%s\n",
	             name && *name ? " " : "", name ? name : "", title, mo->rcpt.addr, url,
	             cfg->postal_address ? cfg->postal_address : "") < 0 ||
	    buf_adds(&html, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	             "<title>Please confirm your subscription</title></head>"
	             "<body style=\"margin:0;padding:24px;background:#ffffff;color:#1f2933;"
	             "font-family:Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;\">"
	             "<p>Hello") < 0 ||
	    (name && *name && (buf_addc(&html, ' ') < 0 ||
	                       tmpl_escape_html(&html, name, strlen(name)) < 0)) ||
	    buf_adds(&html, ",</p><p>someone, we hope you, asked to receive ") < 0 ||
	    tmpl_escape_html(&html, title, strlen(title)) < 0 ||
	    buf_adds(&html, " at ") < 0 ||
	    tmpl_escape_html(&html, mo->rcpt.addr, strlen(mo->rcpt.addr)) < 0 ||
	    buf_adds(&html, ".</p><p><a href=\"") < 0 ||
	    tmpl_escape_html(&html, url, strlen(url)) < 0 ||
	    buf_adds(&html, "\" style=\"color:#1a56db;\">Confirm my subscription</a></p>"
	             "<p>If it was not you, ignore this mail: without confirmation you will "
	             "get nothing more from us.</p></body></html>\n") < 0) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	ret = message_build_automatic(cfg, dkim, "confirm", name, subject, text.data, text.len,
	                              html.data, html.len, now, out, mo, err);
out:
	buf_free(&text);
	buf_free(&html);
	return ret;
}

int
message_build_automatic(const struct config *cfg, const struct dkim_signer *dkim,
                        const char *prefix, const char *to_name, const char *subject,
                        const char *text,
                        size_t text_len, const char *html, size_t html_len, long long now,
                        struct buf *out, struct message_out *mo, struct herr *err)
{
	struct mime_field extra[1];
	struct mime_message mm;
	unsigned char rnd[8];

	buf_reset(out);
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make a Message-ID");
	snprintf(mo->message_id, sizeof mo->message_id,
	         "%s.%02x%02x%02x%02x%02x%02x%02x%02x@%s", prefix, rnd[0], rnd[1], rnd[2], rnd[3],
	         rnd[4], rnd[5], rnd[6], rnd[7], cfg->message_id_domain);
	snprintf(mo->mail_from, sizeof mo->mail_from, "%s", cfg->return_addr.ascii);
	/* RFC 3834 §5: automatic mail says so, so that auto-responders stay
	 * quiet; it is not list mail, so no List-Unsubscribe-Post */
	extra[0].name = "Auto-Submitted";
	extra[0].value = "auto-generated";
	memset(&mm, 0, sizeof mm);
	mm.from_name = cfg->from_name;
	mm.from_addr = cfg->from.ascii;
	mm.to_name = to_name;
	mm.to_addr = mo->rcpt.ascii;
	mm.subject = subject;
	mm.date = (time_t)now;
	mm.message_id = mo->message_id;
	mm.extra = extra;
	mm.n_extra = 1;
	mm.text = text;
	mm.text_len = text_len;
	mm.html = html;
	mm.html_len = html_len;
	if (mime_write_alternative(out, &mm, err) < 0 || (dkim && dkim_sign(dkim, out, now, err) < 0))
		return -1;
	return 0;
}
