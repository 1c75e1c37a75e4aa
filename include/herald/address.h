/*
 * address.h - validating and normalising e-mail addresses.
 *
 * herald accepts the addresses real newsletter lists contain and rejects,
 * with a reason, everything it could not deliver reliably:
 *   - addr-spec only (RFC 5322 §3.4.1): a dot-atom local part; quoted local
 *     parts ("a b"@x) and domain literals (a@[192.0.2.1]) are rejected on
 *     purpose, as no newsletter audience needs them and many relays refuse them;
 *   - RFC 5321 §4.5.3.1 limits: local part <= 64 octets, domain <= 253 octets
 *     in its ASCII (A-label) form, each label <= 63; whole address <= 254
 *     (so the longest usable domain is 252 octets, with a 1-octet local part);
 *   - the domain is LDH labels (letters, digits, hyphen; no label starting or
 *     ending with a hyphen), at least two of them, no trailing dot, and a
 *     top-level label that is not all digits;
 *   - the domain is lower-cased; internationalised domains (IDNA 2008 with
 *     UTS #46 mapping, via libidn2) are accepted and sent in A-label form;
 *   - non-ASCII local parts would need SMTPUTF8 (RFC 6531) end to end, which
 *     herald does not send: they are rejected with a message saying so.
 * Identity is the whole address lower-cased (`key`): Grace@Example.net and
 * grace@example.net are one subscriber; `addr` keeps the spelling given.
 */
#ifndef HERALD_ADDRESS_H
#define HERALD_ADDRESS_H

#include <stddef.h>

#include "herald/herr.h"

#define ADDRESS_LOCAL_MAX  64
#define ADDRESS_DOMAIN_MAX 253
#define ADDRESS_MAX        254

struct address {
	char addr[512];           /* local part as given "@" domain lower-cased, U-labels for IDN */
	char ascii[ADDRESS_MAX + 1]; /* local "@" A-label domain: for SMTP and headers */
	char key[ADDRESS_MAX + 1];   /* ascii, lower-cased: the subscriber's identity */
	char domain[ADDRESS_DOMAIN_MAX + 1]; /* the A-label domain, lower-case */
};

/*
 * Parse and validate `in` (a NUL-terminated string, no surrounding
 * whitespace allowed) into `out`.  Returns 0, or -1 with err->code
 * EX_DATAERR, an empty err->where, `out` zeroed, and a message naming the
 * address and the reason, e.g.
 *   invalid address 'not-an-email': missing '@'
 * In the message, control characters and bytes that are not UTF-8 are shown
 * as \r, \n, \t or \xNN and the input is cut after about 200 bytes with
 * "...", so the message never carries a raw CR/LF and the reason is never
 * cut off.
 */
int address_parse(const char *in, struct address *out, struct herr *err);

/*
 * Split a mailbox as written in a config file or front matter,
 * "Display Name <user@example.org>" or a bare "user@example.org", into a
 * display name (copied to `name`, "" if none; surrounding double quotes
 * removed and \" unescaped) and a parsed address.  Spaces around the name
 * and the address are trimmed, also inside "< a@b >".  Rejects CR, LF and
 * other control characters anywhere, unbalanced quotes or angle brackets,
 * text after '>' and a name that does not fit `name_size` (NUL included).
 * `name` may be NULL to discard it.  Returns 0 or -1 (EX_DATAERR, messages
 * "invalid mailbox '...': reason" or address_parse()'s); on -1 `name` is "".
 */
int address_parse_mailbox(const char *in, char *name, size_t name_size,
                          struct address *out, struct herr *err);

#endif
