/*
 * dns.h - DNS look-ups for `herald doctor`: TXT, A, AAAA and MX, over c-ares.
 *
 * A struct dns_resolver is one c-ares channel, either on the system's
 * resolver configuration (/etc/resolv.conf) or pointed at one server
 * ("127.0.0.1:5353", "[::1]:53"), with a per-query timeout.  Queries are
 * made one at a time and waited for; doctor makes a few dozen, so nothing
 * is gained by running them in parallel.
 *
 * An answer is either records, or "none" (NXDOMAIN or no data of that type:
 * the name is fine to ask about and has nothing), or a failure to get any
 * answer at all (timeout, SERVFAIL, REFUSED, no server), which is an error:
 * doctor must not say "no SPF record" when it never heard from DNS.
 *
 * Also the tag=value list of DKIM (RFC 6376 §3.2) and DMARC (RFC 7489
 * §6.4) records, which both read the same way.
 */
#ifndef HERALD_DNS_H
#define HERALD_DNS_H

#include <stddef.h>

#include "herald/herr.h"

#define DNS_TIMEOUT_MS_DEFAULT 3000

enum dns_type {
	DNS_TXT,
	DNS_A,
	DNS_AAAA,
	DNS_MX,
};

/* The records of one answer, as text: a TXT record's strings joined
 * (RFC 7208 §3.3), an address in its usual notation, an MX's host name
 * (sorted by preference, lowest first).  n == 0: the name has none. */
struct dns_answer {
	char  **records;
	size_t  n;
};

struct dns_resolver;

/*
 * Open a resolver.  `server` is NULL for the system's configuration, else
 * "IP", "IP:PORT" or "[IPv6]:PORT" (EX_USAGE when it is not one).
 * `timeout_ms` per try (two tries), <= 0 for DNS_TIMEOUT_MS_DEFAULT.
 * EX_UNAVAILABLE when c-ares cannot start (no resolv.conf), EX_OSERR when
 * memory ran out.  Free with dns_close().
 */
int dns_open(struct dns_resolver **out, const char *server, long timeout_ms, struct herr *err);
void dns_close(struct dns_resolver *r);

/* What dns_open() was pointed at, for messages: "127.0.0.1:5353" or
 * "the system resolver". */
const char *dns_server_name(const struct dns_resolver *r);

/*
 * Ask for the `type` records of `name`.  0 with `out` filled (n may be 0:
 * none, NXDOMAIN included); -1 when no answer came: EX_UNAVAILABLE
 * (timeout, server failure, refused, connection refused; the message names
 * the server and the reason), EX_DATAERR for a name DNS cannot carry,
 * EX_OSERR for memory.  `out` is empty on -1; free it with
 * dns_answer_free() either way.
 */
int dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
              struct dns_answer *out, struct herr *err);
void dns_answer_free(struct dns_answer *a);

/*
 * The value of tag `tag` in a tag=value list ("v=DKIM1; k=rsa; p=MIIB..."),
 * with the white space around and inside it removed (base64 values may be
 * folded), copied to `out`.  1 when present, 0 when absent, -1 when the
 * value does not fit in `size`.  Tags are compared case-sensitively, as
 * RFC 6376 §3.2 says.
 */
int dns_tag_value(const char *record, const char *tag, char *out, size_t size);

#endif
