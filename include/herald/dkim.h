/*
 * dkim.h - DKIM signatures on outgoing mail (RFC 6376), with RSA-SHA256
 * and, as a second signature when configured, Ed25519-SHA256 (RFC 8463).
 *
 * The signer is set up once per send with one or two keys and is then
 * read-only: the build threads sign concurrently, each call with its own
 * OpenSSL contexts.  Canonicalization is relaxed/relaxed (RFC 6376 §3.4.2,
 * §3.4.4), written here and tested against the RFC's examples; OpenSSL
 * (libcrypto) does the hashing and the signing.
 *
 * Signed headers: From, To, Subject, Date, Message-ID, MIME-Version,
 * Content-Type, Reply-To, List-Id, List-Unsubscribe, List-Unsubscribe-Post,
 * Feedback-ID, Auto-Submitted - each one listed once more than it occurs in
 * the message ("over-signing", RFC 6376 §8.15), so that no further instance
 * can be added after signing without breaking the signature.
 */
#ifndef HERALD_DKIM_H
#define HERALD_DKIM_H

#include <stddef.h>

#include "herald/buf.h"
#include "herald/herr.h"

enum dkim_alg {
	DKIM_RSA_SHA256,
	DKIM_ED25519_SHA256,
};

#define DKIM_RSA_BITS_MIN     1024 /* below: refused (verifiers reject them) */
#define DKIM_RSA_BITS_WANTED  2048 /* below: a warning */

struct dkim_signer; /* opaque; up to two keys */

int dkim_signer_new(struct dkim_signer **out, struct herr *err);
void dkim_signer_free(struct dkim_signer *s);

/*
 * Load the PEM private key at `pem_path` for `alg`, signing as d=`domain`
 * s=`selector`.  Fails (EX_CONFIG, naming the file) when the file is
 * unreadable, not a private key of that algorithm, an RSA key under 1024
 * bits, readable by group or others, or protected by a passphrase; also
 * (EX_CONFIG) when `domain` or `selector` is not ASCII letters, digits, '-'
 * and dots, or the signer already has a key for `alg` (one per algorithm).
 * `warning` (may be NULL, 256 bytes) receives a note such as "RSA key is
 * 1024 bits; use 2048 (RFC 8301)", else "".
 */
int dkim_signer_add_key(struct dkim_signer *s, enum dkim_alg alg, const char *domain,
                        const char *selector, const char *pem_path, char *warning,
                        struct herr *err);

/* Add x= (signature expiration) this many seconds after t=; 0: none. */
void dkim_signer_set_expiry(struct dkim_signer *s, long seconds);

/*
 * Sign the complete message in `msg` (headers, blank line, body; CRLF line
 * ends, as mime.c writes it) and insert one DKIM-Signature header field per
 * key at its top, RSA first (verifiers do not care about the order; RFC 6376
 * §4.2 has them evaluate each signature on its own).  Both signatures cover
 * the same header fields; each field is folded to lines of at most 78
 * characters.  `now` is t=.  Safe to call from several threads at once with
 * the same signer.  Returns 0 or -1 (EX_SOFTWARE for a message without a
 * From field, a malformed header or an OpenSSL failure, EX_OSERR when memory
 * ran out); `msg` is unchanged on failure.
 */
int dkim_sign(const struct dkim_signer *s, struct buf *msg, long long now, struct herr *err);

/*
 * The signing step under dkim_sign(), open so that the signer can be checked
 * against published vectors such as RFC 8463 Appendix A, whose tags and h=
 * differ from herald's.  Signs `msg` (`len` bytes: header fields, CRLF, body)
 * with the signer's key for `alg`, using the tag list `tags` as given, which
 * must contain h= and must not contain bh= or b= ("v=1; a=ed25519-sha256;
 * c=relaxed/relaxed; d=...; s=...; t=...; h=from : to"); c= must say
 * relaxed/relaxed, the only canonicalization implemented.  Appends to `field`
 * the whole header field "DKIM-Signature: <tags>; bh=...; b=...\r\n",
 * folded.  The fields signed are those h= names, bottom-up for a repeated
 * name (§5.4.2); the message itself is not changed.
 */
int dkim_sign_with(const struct dkim_signer *s, enum dkim_alg alg, const char *msg,
                   size_t len, const char *tags, struct buf *field, struct herr *err);

/* Relaxed body canonicalization (RFC 6376 §3.4.4): appends to `out` the very
 * bytes the body hash covers (an empty or all-blank body gives nothing). */
int dkim_canon_body_relaxed(const char *body, size_t len, struct buf *out);
/* Relaxed header canonicalization (§3.4.2) of one field "Name: value"
 * (possibly folded, without its final CRLF): appends "name:value\r\n".
 * Returns -1 for a field without a colon or when `out` is full. */
int dkim_canon_header_relaxed(const char *field, size_t len, struct buf *out);

/*
 * Make a new key: RSA of `bits` (2048 when 0; 1024 to 4096, else EX_USAGE)
 * or Ed25519; write it as PEM (PKCS#8) to `out_path` with mode 0600,
 * refusing to overwrite a file (EX_CANTCREAT).  Appends the DNS TXT record's
 * value to `txt`: "v=DKIM1; k=rsa; p=<DER SubjectPublicKeyInfo>" or
 * "v=DKIM1; k=ed25519; p=<the raw 32-byte key>" (RFC 8463 §4.2), base64.
 */
int dkim_keygen(enum dkim_alg alg, int bits, const char *out_path, struct buf *txt,
                struct herr *err);

/* The TXT value for the public half of the key in `pem_path`, which is
 * checked as dkim_signer_add_key() checks it. */
int dkim_dns_record(enum dkim_alg alg, const char *pem_path, struct buf *txt,
                    struct herr *err);

/*
 * DMARC alignment (RFC 7489 §3.1.1, relaxed): are `d` and `from_domain`
 * the same organizational domain (public suffix list, via libpsl)?
 * Returns 1 aligned, 0 not.
 */
int dkim_aligned(const char *d, const char *from_domain);

#endif
