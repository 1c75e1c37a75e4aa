/*
 * message.h - one subscriber's copy of an issue, as the exact bytes to send.
 *
 * message_ctx_init() does everything that is the same for every recipient
 * once: it compiles the stored subject, HTML and text parts, resolves the
 * sender, and prepares the list headers.  message_build() then only merges
 * fields, mints the subscriber's tokens and writes MIME, which is what makes
 * a send of 100,000 cheap.  The context is read-only after init, so several
 * threads may build messages from one context at once (each with its own
 * output buffer).
 *
 * Headers that make list mail acceptable to the big receivers (their 2024
 * bulk-sender rules): List-Unsubscribe with an https and a mailto address
 * (RFC 2369) and List-Unsubscribe-Post (RFC 8058 one-click) on every list
 * message, List-Id (RFC 2919), Feedback-ID for Gmail's feedback loop, and a
 * DKIM signature over all of them when [dkim] is configured.  The envelope
 * sender is VERP, local+TOKEN@domain of the return path, so an asynchronous
 * bounce names its recipient without anyone parsing it (token.h).
 *
 * Message-ID is deterministic per issue x subscriber:
 *   <ISSUE.SUBSCRIBER.MAC@message_id_domain>
 * where MAC is 8 hex digits of an HMAC over both ids with the token secret,
 * so a retried message carries the same Message-ID (receivers that
 * deduplicate drop the second copy) and two herald installations sending
 * from one domain do not collide.
 */
#ifndef HERALD_MESSAGE_H
#define HERALD_MESSAGE_H

#include <sqlite3.h>

#include "herald/address.h"
#include "herald/buf.h"
#include "herald/config.h"
#include "herald/dkim.h"
#include "herald/herr.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/tmpl.h"
#include "herald/token.h"

#define MESSAGE_MAX (32u << 20) /* cap on one built message */

struct message_ctx {
	const struct config    *cfg;
	const struct token_key *key;
	long long    issue_id, list_id;
	char         list_name[65];
	char         list_title[256];
	char         from_name[256];
	struct address from;
	char         reply_to_name[256];
	struct address reply_to;
	int          has_reply_to;
	char         list_id_value[400];  /* List-Id header value */
	struct tmpl *subject, *html, *text;
	const struct dkim_signer *dkim; /* set by the caller, or NULL: unsigned */
	struct tmpl *const *variants; /* subject-test subjects (subjecttest.h), set by
	                                 the caller, who frees them; n_variants of them */
	size_t       n_variants;
	int          tracking;      /* the issue tracks opens and clicks */
	enum config_tracking tracking_mode; /* how (tracking.h): on for an issue
	                               that tracks, off for one that does not,
	                               by message_ctx_init(); a send sets the
	                               mode stored on the issue */
	int          public_list;   /* the web copy is listed in the archive */
	char       **links;         /* the issue's links (links JSON), as written */
	struct tmpl **link_tmpl;    /* each compiled: links may hold merge fields */
	size_t       n_links;
};

/* Prepare to build messages of issue `is` to list `l`.  The issue's
 * http(s) links become {{link.N}} fields here, so that each copy gets them
 * direct or through the click redirect.  Free with message_ctx_free(). */
int message_ctx_init(struct message_ctx *m, const struct config *cfg,
                     const struct token_key *key, const struct issue *is,
                     const struct list *l, struct herr *err);
void message_ctx_free(struct message_ctx *m);

struct message_recipient {
	long long   subscriber_id; /* 0 for a test recipient who is not a subscriber */
	const char *email;         /* as stored */
	const char *name;
	const char *attributes;    /* JSON object text, or NULL */
	int         untracked;     /* a preview or test copy: no pixel, direct links */
	int         variant;       /* 1-based: the subject of m->variants it gets;
	                              0: the issue's subject */
	const char *lists;         /* {{lists}}: titles of the issue's lists they are
	                              on, 0x1f between them (ledger.h); NULL or "":
	                              the issue's first list */
};

enum message_kind {
	MESSAGE_ISSUE, /* a delivery of the issue to a list member */
	MESSAGE_TEST,  /* `issue test`: marked as a test, own Message-ID */
};

struct message_out {
	char message_id[300];     /* without angle brackets */
	struct address rcpt;      /* envelope recipient, ASCII form */
	char mail_from[300];      /* envelope sender (VERP when configured) */
};

/* Build the message for `r` into `out` (which is reset first).  Fails with
 * EX_DATAERR when the recipient's address or data cannot go into a header;
 * that is the recipient's problem, not the send's. */
int message_build(const struct message_ctx *m, const struct message_recipient *r,
                  enum message_kind kind, long long now, struct buf *out,
                  struct message_out *mo, struct herr *err);

/* The merged parts of `r`'s copy, before MIME: what `issue preview` shows.
 * Appends to the three buffers. */
int message_merge(const struct message_ctx *m, const struct message_recipient *r,
                  struct buf *subject, struct buf *html, struct buf *text,
                  struct herr *err);

/* Does this subscriber's attributes JSON opt out of tracking
 * ("tracking": "no" / "off" / "false" / "0")? */
int message_tracking_refused(const char *attributes_json);

/* The web copy's address: BASE/archive/ID for a public list, else
 * BASE/archive/ID/TOKEN (a view token, so private issues are not listed
 * but their readers can open them). */
int message_view_url(const struct config *cfg, const struct token_key *key, long long issue_id,
                     long long list_id, int public_list, char *out, size_t size);

/*
 * The double opt-in mail: "please confirm your subscription to TITLE" with
 * the link BASE/confirm/TOKEN (a TOKEN_CONFIRM for subscriber x list whose
 * issue-id field is the confirmation `confirm_id`, subscriber.h), in a
 * text and an HTML part.  Automatic mail: Auto-Submitted: auto-generated
 * (RFC 3834), no List-Unsubscribe-Post (it is not list mail), a random
 * Message-ID, the plain return path as envelope sender, DKIM-signed when
 * `dkim` is not NULL.
 */
/*
 * A single automatic mail to mo->rcpt (parsed by the caller; `to_name`
 * its display name or NULL): `subject`, a text part and an HTML part as
 * given, from [sender] from;
 * Auto-Submitted: auto-generated (RFC 3834), a random Message-ID
 * "PREFIX.HEX@[sender] message_id_domain", the plain return path as the
 * envelope sender, DKIM-signed when `dkim` is not NULL.  The confirmation
 * mail, the privacy mails (privacy.h) and the API's one-off mail (apimail.h).
 */
int message_build_automatic(const struct config *cfg, const struct dkim_signer *dkim,
                            const char *prefix, const char *to_name, const char *subject,
                            const char *text,
                            size_t text_len, const char *html, size_t html_len, long long now,
                            struct buf *out, struct message_out *mo, struct herr *err);

int message_build_confirm(const struct config *cfg, const struct token_key *key,
                          const struct dkim_signer *dkim, const struct list *l,
                          long long subscriber_id, long long confirm_id, const char *email,
                          const char *name, long long now, struct buf *out,
                          struct message_out *mo, struct herr *err);

/* The deterministic Message-ID for issue x subscriber (see above). */
int message_id_for(const struct token_key *key, const char *domain, long long issue_id,
                   long long subscriber_id, char *out, size_t size);

/* The DKIM signer the config asks for ([dkim] private_key and maybe an
 * Ed25519 key), or *out = NULL when DKIM is not configured.  Key problems
 * are EX_CONFIG errors naming the file. */
int message_dkim_open(const struct config *cfg, struct dkim_signer **out, struct herr *err);

/* The VERP envelope sender for a subscriber: local+TOKEN@domain of the
 * return path, or the return path itself when [sender] verp = no. */
int message_envelope_from(const struct config *cfg, const struct token_key *key,
                          long long subscriber_id, long long list_id, long long issue_id,
                          char *out, size_t size);

/* A subscriber's attributes (JSON object text) as the tmpl_attr array a
 * merge takes, pointing into *obj; the caller json_decref()s *obj and
 * free()s *attrs, also after a failure.  "" or "{}" give none.  -1 when the
 * text is not a JSON object or memory runs out.  Used by message_merge()
 * and by the click redirect, which merges a link as the mail did. */
struct json_t;
int message_load_attrs(const char *json, struct json_t **obj, struct tmpl_attr **attrs,
                       size_t *n);

/* "A", "A and B", "A, B and C" from list titles with 0x1f between them,
 * appended to `out`: {{lists}} in the footer (the reader's lists among the
 * issue's, ledger.h) and the unsubscribe page (subscriber.h rule (9)) name
 * lists in the same words.  -1 when `out` is full. */
int message_lists_phrase(const char *joined, struct buf *out);

/* The preference centre's URL for a subscriber, reached from the mail of
 * a list (and issue): BASE/p/TOKEN, a TOKEN_PREFERENCES (token.h). */
int message_preferences_url(const struct config *cfg, const struct token_key *key,
                            long long subscriber_id, long long list_id, long long issue_id,
                            char *out, size_t size);

/* The unsubscribe URL for a subscriber of a list (and issue). */
int message_unsubscribe_url(const struct config *cfg, const struct token_key *key,
                            long long subscriber_id, long long list_id, long long issue_id,
                            char *out, size_t size);

#endif
