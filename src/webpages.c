/*
 * webpages.c - the HTML of herald serve's pages (see webpages.h).
 *
 * Every page is the same frame: a doctype, <html lang>, a <title> equal to
 * the <h1>, one inline stylesheet, a <main> with the content.  Only text
 * written here is emitted raw; everything else goes through esc().  The
 * buttons are real <button>s in a <form method="post"> without an action,
 * so the form posts back to the URL the page was served from (the token is
 * in that URL, not in a hidden field), whatever prefix a proxy adds.  The
 * preference centre's two data forms are the exception: they post to
 * TOKEN/export and TOKEN/forget, relative to /p/TOKEN for the same reason.
 * Forms of a token's pages that change something carry the page's nonce
 * (webprefs.h) in a hidden field.
 */
#include "herald/webpages.h"

#include <string.h>
#include <time.h>

#include "herald/tmpl.h"

static const char style[] =
	"body{margin:0;background:#f4f5f7;color:#1f2933;"
	"font:16px/1.5 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif}"
	"main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;"
	"border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}"
	"h1{font-size:1.4rem;line-height:1.3;margin:0 0 1rem}"
	"p{margin:0 0 1rem}"
	"button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;"
	"background:#1a56db;color:#fff;cursor:pointer}"
	"button:hover,button:focus{background:#1e429f}"
	"button:focus{outline:3px solid #76a9fa;outline-offset:2px}"
	"ul{padding:0;list-style:none}li{margin:0 0 .8rem}"
	"a{color:#1a56db}time{color:#52606d;font-size:.9rem;display:block}"
	".addr{font-weight:600;word-break:break-all}"
	/* the preference centre's and the survey's forms */
	"fieldset{border:0;padding:0;margin:0 0 1rem}legend{font-weight:600;margin:0 0 .5rem}"
	"label{display:block;margin:0 0 .5rem}"
	"input[type=text]{font:inherit;width:100%;box-sizing:border-box;padding:.4rem;"
	"border:1px solid #9aa5b1;border-radius:4px}"
	"h2{font-size:1.1rem;margin:2rem 0 .8rem}.small{font-size:.9rem;color:#52606d}"
	"form.inline{display:inline-block;margin:0 .5rem .5rem 0}";

static int
esc(struct buf *b, const char *s)
{
	return tmpl_escape_html(b, s ? s : "", s ? strlen(s) : 0);
}

/* The frame up to and including <main><h1>HEADING</h1>. */
static int
page_open(struct buf *b, const char *lang, const char *heading)
{
	return buf_adds(b, "<!DOCTYPE html>\n<html lang=\"") < 0 ||
	       esc(b, lang && *lang ? lang : "en") < 0 ||
	       buf_adds(b, "\">\n<head>\n<meta charset=\"utf-8\">\n"
	                "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
	                "<meta name=\"robots\" content=\"noindex\">\n<title>") < 0 ||
	       esc(b, heading) < 0 ||
	       buf_addf(b, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<h1>", style) < 0 ||
	       esc(b, heading) < 0 ||
	       buf_adds(b, "</h1>\n") < 0 ? -1 : 0;
}

static int
page_close(struct buf *b)
{
	return buf_adds(b, "</main>\n</body>\n</html>\n");
}

/* <p>BEFORE<span class="addr">EMAIL</span>AFTER</p>, pieces escaped. */
static int
para_addr(struct buf *b, const char *before, const char *email, const char *after)
{
	return buf_adds(b, "<p>") < 0 || esc(b, before) < 0 ||
	       buf_adds(b, "<span class=\"addr\">") < 0 || esc(b, email) < 0 ||
	       buf_adds(b, "</span>") < 0 || esc(b, after) < 0 ||
	       buf_adds(b, "</p>\n") < 0 ? -1 : 0;
}

/* The lists a multi-list unsubscribe reaches, as their own paragraph. */
static int
para_close_lists(struct buf *b, const char *lists)
{
	return buf_adds(b, "<p class=\"lists\">") < 0 || esc(b, lists) < 0 ||
	       buf_adds(b, ".</p>\n") < 0 ? -1 : 0;
}

/* One button posting action=VALUE to the page's own URL. */
static int
button(struct buf *b, const char *value, const char *label)
{
	return buf_addf(b, "<form method=\"post\">\n<button type=\"submit\" name=\"action\" "
	                "value=\"%s\">%s</button>\n</form>\n", value, label);
}

/* A heading made of fixed text and an escaped title: "PREFIX TITLE". */
static int
heading_with(struct buf *b, const char *lang, const char *prefix, const char *title)
{
	struct buf h = BUF_INIT(2048);
	int rc;

	if (buf_adds(&h, prefix) < 0 || buf_adds(&h, title ? title : "") < 0) {
		buf_free(&h);
		return -1;
	}
	rc = page_open(b, lang, buf_str(&h));
	buf_free(&h);
	return rc;
}

int
webpage_notice(struct buf *b, const char *lang, const char *heading, const char *text)
{
	return page_open(b, lang, heading) < 0 || buf_adds(b, "<p>") < 0 || esc(b, text) < 0 ||
	       buf_adds(b, "</p>\n") < 0 || page_close(b) < 0 ? -1 : 0;
}

int
webpage_unsubscribe_ask(struct buf *b, const char *lang, const char *list_title,
                        size_t n_lists, const char *email)
{
	return heading_with(b, lang, "Unsubscribe from ", list_title) < 0 ||
	       (n_lists > 1
	        ? para_addr(b, "This issue was sent to ", email, " through several lists. "
	                    "Unsubscribing removes the address from all of them: ") < 0 ||
	          para_close_lists(b, list_title) < 0
	        : para_addr(b, "The address ", email,
	                    " will get no more mail from this list.") < 0) ||
	       button(b, "unsubscribe", "Unsubscribe") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

/* <input type="hidden" name="nonce" value="NONCE"> (webprefs.h) */
static int
nonce_field(struct buf *b, const char *nonce)
{
	return buf_adds(b, "<input type=\"hidden\" name=\"nonce\" value=\"") < 0 ||
	       esc(b, nonce) < 0 || buf_adds(b, "\">\n") < 0 ? -1 : 0;
}

/* The optional "Why are you leaving?" (prefs.h), posting action=survey
 * with the page's nonce to the page's own URL. */
static int
survey_form(struct buf *b, const char *nonce)
{
	static const char *const choices[][2] = {
		{ "too_many", "Too many mails" },
		{ "not_relevant", "Not relevant to me" },
		{ "never_signed_up", "I never signed up" },
		{ "other", "Other:" },
	};
	size_t i;

	if (buf_adds(b, "<form method=\"post\">\n") < 0 || nonce_field(b, nonce) < 0 ||
	    buf_adds(b, "<fieldset>\n<legend>Why are you leaving? (optional)</legend>\n"
	             "<p class=\"small\">You are unsubscribed already; answering changes "
	             "nothing but helps us.</p>\n") < 0)
		return -1;
	for (i = 0; i < sizeof choices / sizeof choices[0]; i++)
		if (buf_addf(b, "<label><input type=\"radio\" name=\"reason\" value=\"%s\"> "
		             "%s</label>\n", choices[i][0], choices[i][1]) < 0)
			return -1;
	return buf_adds(b, "<label>In a few words: <input type=\"text\" name=\"note\" "
	                "maxlength=\"300\"></label>\n</fieldset>\n<button type=\"submit\" "
	                "name=\"action\" value=\"survey\">Send my answer</button>\n"
	                "</form>\n");
}

int
webpage_unsubscribed(struct buf *b, const char *lang, const char *list_title,
                     size_t n_lists, const char *email, const char *nonce)
{
	return heading_with(b, lang, "You have been unsubscribed from ", list_title) < 0 ||
	       (n_lists > 1
	        ? para_addr(b, "This issue was sent to ", email, " through several lists. "
	                    "The address was removed from all of them: ") < 0 ||
	          para_close_lists(b, list_title) < 0
	        : para_addr(b, "We will send no more of this list to ", email, ".") < 0) ||
	       buf_adds(b, "<p>Was that a mistake?</p>\n") < 0 ||
	       button(b, "resubscribe", "Subscribe again") < 0 ||
	       (nonce && survey_form(b, nonce) < 0) ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_resubscribed(struct buf *b, const char *lang, const char *list_title,
                     const char *email)
{
	return page_open(b, lang, "You are subscribed again") < 0 ||
	       buf_adds(b, "<p>") < 0 || esc(b, list_title) < 0 ||
	       buf_adds(b, " will come to ") < 0 ||
	       buf_adds(b, "<span class=\"addr\">") < 0 || esc(b, email) < 0 ||
	       buf_adds(b, "</span> again.</p>\n") < 0 ||
	       button(b, "unsubscribe", "Unsubscribe") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_confirm_ask(struct buf *b, const char *lang, const char *list_title,
                    const char *email)
{
	return heading_with(b, lang, "Confirm your subscription to ", list_title) < 0 ||
	       para_addr(b, "Press the button to receive this list at ", email, ".") < 0 ||
	       button(b, "confirm", "Confirm my subscription") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_confirmed(struct buf *b, const char *lang, const char *list_title, const char *email)
{
	return page_open(b, lang, "Subscription confirmed") < 0 ||
	       buf_adds(b, "<p>") < 0 || esc(b, list_title) < 0 ||
	       buf_adds(b, " will come to ") < 0 ||
	       buf_adds(b, "<span class=\"addr\">") < 0 || esc(b, email) < 0 ||
	       buf_adds(b, "</span>. Thank you.</p>\n") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_confirm_expired(struct buf *b, const char *lang, const char *list_title,
                        const char *email)
{
	return page_open(b, lang, "This link no longer works") < 0 ||
	       buf_adds(b, "<p>A confirmation link works once, and only for a few days. "
	                   "This one was used already, or is too old, so it changed "
	                   "nothing.</p>\n") < 0 ||
	       buf_adds(b, "<p>To receive ") < 0 || esc(b, list_title) < 0 ||
	       buf_adds(b, ", ask for a new link.</p>\n") < 0 ||
	       para_addr(b, "We will send it to ", email, ".") < 0 ||
	       button(b, "resend", "Send me a new link") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_check_inbox(struct buf *b, const char *lang, const char *list_title,
                    const char *email)
{
	return page_open(b, lang, "Check your inbox") < 0 ||
	       para_addr(b, "We have sent a message to ", email, ".") < 0 ||
	       buf_adds(b, "<p>Open the link in it to confirm your subscription to ") < 0 ||
	       esc(b, list_title) < 0 ||
	       buf_adds(b, ". Until then you will get nothing from us.</p>\n") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_subscribed(struct buf *b, const char *lang, const char *list_title, const char *email)
{
	return page_open(b, lang, "You are subscribed") < 0 ||
	       buf_adds(b, "<p>") < 0 || esc(b, list_title) < 0 ||
	       buf_adds(b, " will come to ") < 0 ||
	       buf_adds(b, "<span class=\"addr\">") < 0 || esc(b, email) < 0 ||
	       buf_adds(b, "</span>. Every message has a link to unsubscribe.</p>\n") < 0 ||
	       /* the same page whatever the address's past (web.c invariant 6):
	        * one who had left gets a mail instead (subscriber.h rule 8) */
	       buf_adds(b, "<p>If this address had unsubscribed before, we have sent it a "
	                   "message instead: open the link in it to come back.</p>\n") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}

int
webpage_preferences(struct buf *b, const char *lang, const struct webpage_prefs *p)
{
	size_t i;

	if (page_open(b, lang, "Your subscriptions") < 0 ||
	    (p->notice && (buf_adds(b, "<p class=\"notice\"><strong>") < 0 ||
	                   esc(b, p->notice) < 0 || buf_adds(b, "</strong></p>\n") < 0)) ||
	    para_addr(b, "The lists ", p->email, " can receive. Tick what you want, untick "
	              "what you do not, and save.") < 0 ||
	    buf_adds(b, "<form method=\"post\">\n") < 0 || nonce_field(b, p->nonce) < 0 ||
	    buf_adds(b, "<fieldset>\n<legend>Lists</legend>\n") < 0)
		return -1;
	if (!p->n && buf_adds(b, "<p>There are no lists to choose from.</p>\n") < 0)
		return -1;
	for (i = 0; i < p->n; i++)
		if (buf_addf(b, "<label><input type=\"checkbox\" name=\"list\" value=\"%lld\"%s> ",
		             p->lists[i].id, p->lists[i].checked ? " checked" : "") < 0 ||
		    esc(b, p->lists[i].title) < 0 ||
		    (p->lists[i].waiting &&
		     buf_adds(b, " <span class=\"small\">(waiting for your confirmation)</span>") < 0) ||
		    (p->lists[i].consent_text && *p->lists[i].consent_text &&
		     (buf_adds(b, "<br><span class=\"small\">") < 0 ||
		      esc(b, p->lists[i].consent_text) < 0 || buf_adds(b, "</span>") < 0)) ||
		    buf_adds(b, "</label>\n") < 0)
			return -1;
	if (buf_adds(b, "</fieldset>\n") < 0 ||
	    (p->tracking_shown &&
	     buf_addf(b, "<fieldset>\n<legend>Tracking</legend>\n<label><input type=\"checkbox\" "
	              "name=\"tracking_consent\" value=\"yes\"%s> Count when I open a mail or "
	              "follow a link in it</label>\n</fieldset>\n",
	              p->tracking_consent ? " checked" : "") < 0))
		return -1;
	if (buf_adds(b, "<label>Your name <input type=\"text\" name=\"name\" "
	             "maxlength=\"256\" autocomplete=\"name\" value=\"") < 0 ||
	    esc(b, p->name) < 0 ||
	    buf_adds(b, "\"></label>\n<label>Your address <input type=\"text\" name=\"email\" "
	             "inputmode=\"email\" autocomplete=\"email\" value=\"") < 0 ||
	    esc(b, p->email) < 0 ||
	    buf_adds(b, "\"></label>\n<p class=\"small\">A new address gets a confirmation "
	             "message first: nothing changes for it until it is confirmed, and this "
	             "address keeps its lists.</p>\n<button type=\"submit\" name=\"action\" "
	             "value=\"save\">Save my choices</button>\n</form>\n") < 0 ||
	    buf_adds(b, "<h2>Leave everything</h2>\n<form method=\"post\">\n") < 0 ||
	    nonce_field(b, p->nonce) < 0 ||
	    buf_adds(b, "<button type=\"submit\" name=\"action\" value=\"leave_all\">"
	             "Unsubscribe from everything</button>\n</form>\n") < 0 ||
	    (p->survey && survey_form(b, p->nonce) < 0))
		return -1;
	/* the reader's data: handled by /p/TOKEN/export and /p/TOKEN/forget,
	 * relative to this page's URL (/p/TOKEN) whatever prefix a proxy adds */
	if (buf_adds(b, "<h2>Your data</h2>\n<form class=\"inline\" method=\"post\" action=\"") < 0 ||
	    esc(b, p->token) < 0 || buf_adds(b, "/export\">\n") < 0 || nonce_field(b, p->nonce) < 0 ||
	    buf_adds(b, "<button type=\"submit\">Download my data</button>\n</form>\n"
	             "<form class=\"inline\" method=\"post\" action=\"") < 0 ||
	    esc(b, p->token) < 0 || buf_adds(b, "/forget\">\n") < 0 || nonce_field(b, p->nonce) < 0 ||
	    buf_adds(b, "<button type=\"submit\">Delete me</button>\n</form>\n") < 0)
		return -1;
	return page_close(b);
}

int
webpage_archive(struct buf *b, const char *lang, const char *href_prefix,
                const struct webpage_issue *v, size_t n)
{
	char date[32], iso[32];
	struct tm tm;
	time_t t;
	size_t i;

	if (page_open(b, lang, "Archive") < 0)
		return -1;
	if (!n)
		return buf_adds(b, "<p>Nothing has been published yet.</p>\n") < 0 ||
		       page_close(b) < 0 ? -1 : 0;
	if (buf_adds(b, "<ul>\n") < 0)
		return -1;
	for (i = 0; i < n; i++) {
		t = (time_t)v[i].date;
		gmtime_r(&t, &tm);
		strftime(date, sizeof date, "%d %B %Y", &tm);
		strftime(iso, sizeof iso, "%Y-%m-%d", &tm);
		if (buf_addf(b, "<li><a href=\"%s%lld\">", href_prefix, v[i].id) < 0 ||
		    esc(b, v[i].subject) < 0 ||
		    buf_addf(b, "</a><time datetime=\"%s\">%s", iso, date) < 0 ||
		    (v[i].list_title && *v[i].list_title &&
		     (buf_adds(b, " &middot; ") < 0 || esc(b, v[i].list_title) < 0)) ||
		    buf_adds(b, "</time></li>\n") < 0)
			return -1;
	}
	return buf_adds(b, "</ul>\n") < 0 || page_close(b) < 0 ? -1 : 0;
}

int
webpage_signup_form(struct buf *b, const struct webpage_signup *f)
{
	return buf_adds(b, "<form method=\"post\" action=\"") < 0 || esc(b, f->action) < 0 ||
	       buf_adds(b, "\" accept-charset=\"utf-8\">\n<input type=\"hidden\" name=\"list\" "
	                "value=\"") < 0 || esc(b, f->list_name) < 0 ||
	       buf_adds(b, "\">\n<label>Your e-mail address <input type=\"email\" name=\"email\" "
	                "required maxlength=\"254\" autocomplete=\"email\"></label>\n"
	                "<label>Your name (optional) <input type=\"text\" name=\"name\" "
	                "maxlength=\"256\" autocomplete=\"name\"></label>\n") < 0 ||
	       (f->tracking_shown &&
	        buf_adds(b, "<label><input type=\"checkbox\" name=\"tracking_consent\" "
	                 "value=\"yes\"> Count when I open a mail or follow a link in it "
	                 "(optional)</label>\n") < 0) ||
	       (f->consent_text && *f->consent_text &&
	        (buf_adds(b, "<p class=\"small consent\">") < 0 || esc(b, f->consent_text) < 0 ||
	         buf_adds(b, "</p>\n") < 0)) ||
	       buf_adds(b, "<button type=\"submit\">Subscribe</button>\n</form>\n") < 0 ? -1 : 0;
}

int
webpage_signup(struct buf *b, const char *lang, const struct webpage_signup *f)
{
	return heading_with(b, lang, "Subscribe to ", f->list_title) < 0 ||
	       webpage_signup_form(b, f) < 0 || page_close(b) < 0 ? -1 : 0;
}

int
webpage_erase_ask(struct buf *b, const char *lang, const char *email)
{
	return page_open(b, lang, "Delete your data") < 0 ||
	       para_addr(b, "Everything we hold about ", email, " will be deleted: the "
	                 "subscriptions, the name, and the history of the mail we sent.") < 0 ||
	       buf_adds(b, "<p>We keep only the numbers of past mailings, linked to nobody, "
	                "and a coded fingerprint of the address so that an old spreadsheet "
	                "cannot sign you up again. This cannot be undone.</p>\n") < 0 ||
	       button(b, "erase", "Delete my data") < 0 ||
	       page_close(b) < 0 ? -1 : 0;
}
