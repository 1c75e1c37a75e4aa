/*
 * address.c - validating and normalising e-mail addresses (see address.h).
 *
 * Owns the one definition of "an address herald will send to": the CSV
 * import, the config (From, Reply-To, Return-Path) and the CLI all go
 * through address_parse(), so a subscriber that got in can always be mailed.
 *
 * RFCs and standards:
 *   RFC 5322 §3.2.3 atext and dot-atom, §3.4 mailbox / name-addr,
 *            §3.4.1 addr-spec (quoted local parts and domain literals are
 *            syntactically valid there; herald refuses them on purpose);
 *   RFC 5321 §4.5.3.1.1 local part <= 64 octets, §4.5.3.1.2 domain (we use
 *            DNS's 253 for the dotted text form), §4.5.3.1.3 path <= 256
 *            octets with the angle brackets, so an address <= 254;
 *   RFC 1035 §2.3.1 and RFC 1123 §2.1 LDH labels of <= 63 octets;
 *   RFC 3696 §2 a top-level domain is never all-numeric (so "a@x.123" is
 *            a typo or an IP address, not a domain);
 *   RFC 5890/5891 IDNA 2008 with UTS #46 non-transitional mapping (libidn2);
 *   RFC 6531 SMTPUTF8, which herald does not use: see the header.
 *
 * Invariants of a struct address filled by address_parse():
 *   (1) ascii, key and domain are printable ASCII without whitespace, so they
 *       can go into an SMTP command or a header without further escaping;
 *   (2) key is ascii lower-cased and domain is the part of ascii after '@';
 *   (3) addr differs from ascii only in the domain, which is in U-label form.
 *
 * Error messages quote the input, with control characters and bytes that
 * are not UTF-8 shown as \r, \n, \t or \xNN: a message can be printed or
 * logged without letting a CR/LF from a hostile CSV into the terminal or a
 * log line.
 */
#include "herald/address.h"
#include "herald/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

/* Bytes of quoted input in a message (a few more for a last UTF-8
 * character); the rest is replaced by "...", so the reason at the end of
 * the message is never cut off by herr's cap. */
#define SHOW_MAX 200

static void	show(char *dst, size_t size, const char *s);
static int	fail(struct herr *err, const char *what, const char *in,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
show(char *dst, size_t size, const char *s)
{
	herr_show(dst, size < SHOW_MAX + 8 ? size : SHOW_MAX + 8, s);
}

/* "invalid <what> 'in': reason"; always returns -1. */
static int
fail(struct herr *err, const char *what, const char *in, const char *fmt, ...)
{
	char shown[SHOW_MAX + 16], reason[HERR_MSG_MAX];
	va_list ap;

	show(shown, sizeof shown, in);
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	return herr_set(err, EX_DATAERR, NULL, "invalid %s '%s': %s", what, shown, reason);
}

/* RFC 5322 §3.2.3 atext, less the dot which dot-atom handles. */
static int
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int
is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 'a' - 'A';
}

/* C0 controls, DEL, and the C1 controls U+0080..U+009F (C2 80..C2 9F in
 * UTF-8): what the MIME writer refuses in a header must be refused here. */
static int
has_control(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u; u++)
		if (*u < 0x20 || *u == 0x7f || (*u == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f))
			return 1;
	return 0;
}

/*
 * ASCII space and tab, and the Unicode spaces that copying from a web page
 * or a word processor brings along (U+00A0, U+2000-U+200B, U+202F, U+205F,
 * U+3000, U+FEFF): without this check a no-break space in the local part
 * would be reported as "non-ASCII", which sends the user looking for an
 * accent that is not there.
 */
static int
has_space(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u; u++) {
		if (*u == ' ' || *u == '\t')
			return 1;
		if (u[0] == 0xc2 && u[1] == 0xa0)
			return 1;
		if (u[0] == 0xe2 && u[1] == 0x80 && u[2] >= 0x80 &&
		    (u[2] <= 0x8b || u[2] == 0xaf))
			return 1;
		if (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f)
			return 1;
		if (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80)
			return 1;
		if (u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf)
			return 1;
	}
	return 0;
}

static int
valid_utf8(const char *s)
{
	size_t n = strlen(s);

	return utf8_invalid_at((const unsigned char *)s, n) == n;
}

/*
 * The local part as a dot-atom (RFC 5322 §3.2.3) of at most 64 octets
 * (RFC 5321 §4.5.3.1.1).  Returns a reason or NULL; `why` holds formatted
 * reasons.
 */
static const char *
check_local(const char *l, size_t len, char *why, size_t why_size)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)l[i] >= 0x80)
			return "non-ASCII local part needs SMTPUTF8, which herald does not send";
	if (l[0] == '.')
		return "local part starts with a dot";
	if (l[len - 1] == '.')
		return "local part ends with a dot";
	for (i = 0; i < len; i++) {
		if (l[i] == '.') {
			if (l[i + 1] == '.')
				return "local part has two dots in a row";
		} else if (!is_atext((unsigned char)l[i])) {
			snprintf(why, why_size, "invalid character '%c' in local part", l[i]);
			return why;
		}
	}
	if (len > ADDRESS_LOCAL_MAX) {
		snprintf(why, why_size, "local part is longer than %d octets", ADDRESS_LOCAL_MAX);
		return why;
	}
	return NULL;
}

/*
 * An ASCII, lower-cased domain of LDH labels (RFC 1035 §2.3.1, RFC 1123
 * §2.1): at least two labels, none empty, none longer than 63 octets, none
 * starting or ending with a hyphen, no trailing dot (a root-anchored name
 * is legal DNS but not a mail domain anyone types), and a top-level label
 * that is not all digits (RFC 3696 §2).
 */
static const char *
check_domain(const char *d, char *why, size_t why_size)
{
	const char *label, *end, *p;
	size_t len = strlen(d), n, labels = 0;
	int digits;

	if (len > ADDRESS_DOMAIN_MAX) {
		snprintf(why, why_size, "domain is longer than %d octets", ADDRESS_DOMAIN_MAX);
		return why;
	}
	/* libidn2 maps a domain of only ignorable characters (U+00AD) to "" */
	if (len == 0)
		return "empty domain";
	if (d[0] == '.')
		return "domain starts with a dot";
	if (d[len - 1] == '.')
		return "domain ends with a dot";
	if (strstr(d, ".."))
		return "domain has an empty label";
	for (label = d; *label; label = *end ? end + 1 : end) {
		end = strchr(label, '.');
		if (!end)
			end = label + strlen(label);
		n = (size_t)(end - label);
		labels++;
		for (p = label; p < end; p++)
			if (!is_ldh((unsigned char)*p)) {
				snprintf(why, why_size, "invalid character '%c' in domain", *p);
				return why;
			}
		if (n > 63) {
			snprintf(why, why_size, "domain label '%.*s' is longer than 63 octets",
			    (int)n, label);
			return why;
		}
		if (label[0] == '-' || end[-1] == '-') {
			snprintf(why, why_size, "domain label '%.*s' %s with a hyphen", (int)n,
			    label, label[0] == '-' ? "starts" : "ends");
			return why;
		}
		if (!*end) {
			if (labels < 2) {
				snprintf(why, why_size, "domain '%s' has no dot", d);
				return why;
			}
			for (digits = 1, p = label; p < end; p++)
				if (*p < '0' || *p > '9')
					digits = 0;
			if (digits) {
				snprintf(why, why_size, "top-level domain '%.*s' is all digits",
				    (int)n, label);
				return why;
			}
		}
	}
	return NULL;
}

static int
has_alabel(const char *d)
{
	const char *p = d;

	for (;;) {
		if (!strncmp(p, "xn--", 4))
			return 1;
		if (!(p = strchr(p, '.')))
			return 0;
		p++;
	}
}

/*
 * Turn the domain as given into its lower-case A-label form `ascii` and
 * U-label form `uni`.  ASCII domains without A-labels only need
 * lower-casing; anything else goes through libidn2, and its result is
 * checked with the same LDH rules (libidn2 without STD3 rules lets "_" and
 * empty labels through).  An A-label given as such must survive the round
 * trip, or it was made up rather than encoded.
 */
static const char *
convert_domain(const char *in, char *ascii, char *uni, size_t uni_size,
               char *why, size_t why_size)
{
	const unsigned char *u;
	const char *r;
	char *a = NULL, *un = NULL, *back = NULL;
	int rc, non_ascii = 0;
	size_t n;

	for (u = (const unsigned char *)in; *u; u++)
		if (*u >= 0x80)
			non_ascii = 1;
	/* Keep libidn2 away from megabytes of input. */
	if (strlen(in) > 4 * ADDRESS_DOMAIN_MAX) {
		snprintf(why, why_size, "domain is longer than %d octets", ADDRESS_DOMAIN_MAX);
		return why;
	}
	if (!non_ascii) {
		if ((n = strlen(in)) > ADDRESS_DOMAIN_MAX) {
			snprintf(why, why_size, "domain is longer than %d octets",
			    ADDRESS_DOMAIN_MAX);
			return why;
		}
		memcpy(ascii, in, n + 1);
		lower(ascii);
		if ((r = check_domain(ascii, why, why_size)) != NULL)
			return r;
		if (!has_alabel(ascii)) {
			snprintf(uni, uni_size, "%s", ascii);
			return NULL;
		}
		rc = idn2_to_unicode_8z8z(ascii, &un, 0);
		if (rc == IDN2_OK)
			rc = idn2_to_ascii_8z(un, &back, IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK || strcmp(back, ascii) != 0) {
			snprintf(why, why_size, "domain has an invalid A-label: %s",
			    rc != IDN2_OK ? idn2_strerror(rc) : "it does not round-trip");
			r = why;
		} else if ((size_t)snprintf(uni, uni_size, "%s", un) >= uni_size)
			r = "domain is too long in Unicode form";
		else
			r = NULL;
		idn2_free(un);
		idn2_free(back);
		return r;
	}
	rc = idn2_to_ascii_8z(in, &a, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		snprintf(why, why_size, "invalid internationalised domain: %s",
		    idn2_strerror(rc));
		return why;
	}
	if (strlen(a) > ADDRESS_DOMAIN_MAX) {
		idn2_free(a);
		snprintf(why, why_size, "domain is longer than %d octets in A-label form",
		    ADDRESS_DOMAIN_MAX);
		return why;
	}
	/* Once ASCII, the domain is checked as one given in ASCII would be:
	 * the LDH rules and the round trip of every A-label, including one
	 * written as such beside the labels libidn2 encoded (a made-up
	 * "xn--" label next to "ü" must not pass). */
	{
		char given[ADDRESS_DOMAIN_MAX + 2];

		memcpy(given, a, strlen(a) + 1);
		idn2_free(a);
		return convert_domain(given, ascii, uni, uni_size, why, why_size);
	}
}

int
address_parse(const char *in, struct address *out, struct herr *err)
{
	char why[HERR_MSG_MAX], ascii_dom[ADDRESS_DOMAIN_MAX + 2], uni[sizeof out->addr];
	const char *at, *dom, *r;
	size_t local_len, n;

	memset(out, 0, sizeof *out);
	if (!in || !*in)
		return fail(err, "address", "", "empty");
	/* Order matters: CR/LF is the attack, so it is named first. */
	if (has_control(in))
		return fail(err, "address", in, "contains a control character");
	if (in[0] == '"')
		return fail(err, "address", in, "quoted local parts are not accepted");
	if (has_space(in))
		return fail(err, "address", in, "contains whitespace");
	if (!valid_utf8(in))
		return fail(err, "address", in, "not valid UTF-8");
	if (!(at = strchr(in, '@')))
		return fail(err, "address", in, "missing '@'");
	if (strchr(at + 1, '@'))
		return fail(err, "address", in, "more than one '@'");
	dom = at + 1;
	local_len = (size_t)(at - in);
	if (local_len == 0)
		return fail(err, "address", in, "empty local part");
	if (!*dom)
		return fail(err, "address", in, "empty domain");
	if (dom[0] == '[')
		return fail(err, "address", in, "domain literals are not accepted");
	if ((r = check_local(in, local_len, why, sizeof why)) != NULL)
		return fail(err, "address", in, "%s", r);
	if ((r = convert_domain(dom, ascii_dom, uni, sizeof uni, why, sizeof why)) != NULL)
		return fail(err, "address", in, "%s", r);
	n = local_len + 1 + strlen(ascii_dom);
	if (n > ADDRESS_MAX)
		return fail(err, "address", in, "address is longer than %d octets",
		    ADDRESS_MAX);
	if ((size_t)snprintf(out->addr, sizeof out->addr, "%.*s@%s", (int)local_len, in,
	    uni) >= sizeof out->addr) {
		memset(out, 0, sizeof *out);
		return fail(err, "address", in, "domain is too long in Unicode form");
	}
	/* n <= ADDRESS_MAX was checked above. */
	memcpy(out->ascii, in, local_len + 1);
	memcpy(out->ascii + local_len + 1, ascii_dom, n - local_len);
	memcpy(out->key, out->ascii, n + 1);
	lower(out->key);
	memcpy(out->domain, ascii_dom, strlen(ascii_dom) + 1);
	return 0;
}

/*
 * The display name before '<': a quoted-string loses its quotes and its
 * backslash escapes (RFC 5322 §3.2.4); anything else is kept as written,
 * as long as its quotes balance.
 */
static int
copy_name(const char *in, const char *s, size_t len, char *name, size_t name_size,
          struct herr *err)
{
	size_t i, o = 0;
	int quoted = 0;
	char c;

	/* One quoted-string only: '"A" "B"' is kept as written. */
	if (len >= 2 && s[0] == '"') {
		for (i = 1; i < len && s[i] != '"'; i++)
			if (s[i] == '\\')
				i++;
		if (i == len - 1) {
			quoted = 1;
			s++;
			len -= 2;
		}
	}
	for (i = 0; i < len; i++) {
		c = s[i];
		if (quoted && c == '\\' && i + 1 < len)
			c = s[++i];
		if (name && o + 1 >= name_size) {
			if (name_size)
				name[0] = '\0';
			return fail(err, "mailbox", in, "display name is longer than %zu bytes",
			    name_size ? name_size - 1 : 0);
		}
		if (name)
			name[o++] = c;
	}
	if (name && name_size)
		name[o] = '\0';
	return 0;
}

int
address_parse_mailbox(const char *in, char *name, size_t name_size,
                      struct address *out, struct herr *err)
{
	char spec[1024];
	const char *s, *e, *lt = NULL, *gt = NULL, *p, *ne;
	int quoted = 0;

	memset(out, 0, sizeof *out);
	if (name && name_size)
		name[0] = '\0';
	if (!in)
		in = "";
	if (has_control(in))
		return fail(err, "mailbox", in, "contains a control character");
	if (!valid_utf8(in))
		return fail(err, "mailbox", in, "not valid UTF-8");
	for (s = in; *s == ' '; s++)
		;
	for (e = s + strlen(s); e > s && e[-1] == ' '; e--)
		;
	if (s == e)
		return fail(err, "mailbox", in, "empty");
	/* Find '<' and '>' outside quoted strings. */
	for (p = s; p < e; p++) {
		if (gt)
			return fail(err, "mailbox", in, "text after '>'");
		if (quoted) {
			if (*p == '\\' && p + 1 < e)
				p++;
			else if (*p == '"')
				quoted = 0;
		} else if (*p == '"')
			quoted = 1;
		else if (*p == '<') {
			if (lt)
				return fail(err, "mailbox", in, "more than one '<'");
			lt = p;
		} else if (*p == '>') {
			if (!lt || gt)
				return fail(err, "mailbox", in, "unbalanced '>'");
			gt = p;
		}
	}
	if (quoted)
		return fail(err, "mailbox", in, "unbalanced quotes");
	if (lt && !gt)
		return fail(err, "mailbox", in, "unbalanced '<'");
	if (!lt) {
		if ((size_t)(e - s) >= sizeof spec)
			return fail(err, "mailbox", in, "too long");
		memcpy(spec, s, (size_t)(e - s));
		spec[e - s] = '\0';
		return address_parse(spec, out, err);
	}
	/* "< a@b >" is trimmed like the rest. */
	for (p = lt + 1; p < gt && *p == ' '; p++)
		;
	for (ne = gt; ne > p && ne[-1] == ' '; ne--)
		;
	if ((size_t)(ne - p) >= sizeof spec)
		return fail(err, "mailbox", in, "too long");
	memcpy(spec, p, (size_t)(ne - p));
	spec[ne - p] = '\0';
	for (ne = lt; ne > s && ne[-1] == ' '; ne--)
		;
	if (copy_name(in, s, (size_t)(ne - s), name, name_size, err) < 0)
		return -1;
	if (address_parse(spec, out, err) < 0) {
		if (name && name_size)
			name[0] = '\0';
		return -1;
	}
	return 0;
}
