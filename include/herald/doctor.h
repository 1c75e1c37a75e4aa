/*
 * doctor.h - `herald doctor`: what receivers will check about the sending
 * setup, checked first from here.
 *
 * Each check looks at the configured domain, key, URL, relay or mailbox as
 * a receiver or a reader's mail client would, and says pass, warn, fail or
 * skip, with what it saw (the exact TXT record, the HTTP status, the SMTP
 * reply) and, unless it passed, one sentence saying how to fix it, computed
 * from the config and the key (the TXT record to publish, the term to add).
 *
 *   spf       the envelope domain's SPF record ([sender] return_path's
 *             domain, else From's; RFC 7208): exactly one, within 10 DNS
 *             look-ups, and it passes each relay's address when known
 *   dkim      selector._domainkey.domain holds the public half of [dkim]
 *             private_key (and of ed25519_private_key when set; RFC 6376)
 *   dmarc     _dmarc.<From domain>, else its organizational domain
 *             (RFC 7489 §6.6.3): valid, not p=none, and DKIM's d= or SPF's
 *             domain aligned with From under its adkim/aspf
 *   tracking  the host of [web] base_url has an A or AAAA record
 *   https     [web] base_url is https:// on a host readers can reach
 *   one-click the unsubscribe URL herald puts in List-Unsubscribe answers
 *             an RFC 8058 one-click POST as herald serve does
 *   relay     each [smtp] relay: connect, EHLO, STARTTLS and AUTH as set
 *   bounce    [bounce] mailbox: log in and count what waits there
 *
 * The DNS checks use dns.h (c-ares), pointed at opts->resolver when given.
 * Nothing here prints; the CLI (src/cmd/doctor.c) renders the report.
 */
#ifndef HERALD_DOCTOR_H
#define HERALD_DOCTOR_H

#include <stddef.h>

#include "herald/config.h"
#include "herald/herr.h"

enum doctor_status {
	DOCTOR_PASS,
	DOCTOR_WARN,
	DOCTOR_FAIL,
	DOCTOR_SKIP,   /* not checked: DNS gave no answer to an earlier
	                  question, and asking again would only wait again */
};

enum doctor_check {
	DOCTOR_SPF       = 1 << 0,
	DOCTOR_DKIM      = 1 << 1,
	DOCTOR_DMARC     = 1 << 2,
	DOCTOR_TRACKING  = 1 << 3,
	DOCTOR_HTTPS     = 1 << 4,
	DOCTOR_ONE_CLICK = 1 << 5,
	DOCTOR_RELAY     = 1 << 6,
	DOCTOR_BOUNCE    = 1 << 7,
	DOCTOR_ALL       = (1 << 8) - 1,
};

struct doctor_result {
	const char *check;          /* "spf", "dkim", ... (static) */
	enum doctor_status status;
	char *saw;                  /* what was seen, one line */
	char *fix;                  /* one sentence; NULL for pass and skip */
	int   dns_unanswered;       /* DNS gave no answer at all */
};

struct doctor_report {
	struct doctor_result *results; /* in the order of the list above */
	size_t n;
};

struct doctor_opts {
	const char *resolver;      /* "IP[:PORT]" for the DNS checks, NULL: the system's */
	unsigned    checks;        /* enum doctor_check bits; 0 means all */
	long        dns_timeout_ms;/* <= 0: DNS_TIMEOUT_MS_DEFAULT */
	long        http_timeout_s;/* one-click POST; <= 0: 10 */
};

/* The check names, comma-separated, as --only takes them. */
extern const char doctor_check_names[];

/* Parse "spf,dkim" into enum doctor_check bits.  EX_USAGE naming the
 * unknown name. */
int doctor_checks_parse(const char *list, unsigned *out, struct herr *err);

/*
 * Run the checks `o` selects against `cfg`, appending results to *rep
 * (start it zeroed; free with doctor_report_free(), also after -1).
 * A check's finding is a result, never an error: -1 only for a --resolver
 * that is no address (EX_USAGE), a resolver that cannot start
 * (EX_UNAVAILABLE) and memory (EX_OSERR).
 */
int doctor_run(const struct config *cfg, const struct doctor_opts *o,
               struct doctor_report *rep, struct herr *err);
void doctor_report_free(struct doctor_report *rep);

const char *doctor_status_name(enum doctor_status s);

#endif
