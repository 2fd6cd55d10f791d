#include "pin.h"

#include <errno.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

#include "strbuf.h"
#include "xalloc.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    struct strbuf sb = STRBUF_INIT;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        strbuf_addch(&sb, b64chars[v >> 18]);
        strbuf_addch(&sb, b64chars[(v >> 12) & 63]);
        strbuf_addch(&sb, b64chars[(v >> 6) & 63]);
        strbuf_addch(&sb, b64chars[v & 63]);
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        strbuf_addch(&sb, b64chars[v >> 18]);
        strbuf_addch(&sb, b64chars[(v >> 12) & 63]);
        strbuf_adds(&sb, "==");
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        strbuf_addch(&sb, b64chars[v >> 18]);
        strbuf_addch(&sb, b64chars[(v >> 12) & 63]);
        strbuf_addch(&sb, b64chars[(v >> 6) & 63]);
        strbuf_addch(&sb, '=');
    }
    return strbuf_detach(&sb, NULL);
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;
    return p ? (int)(p - b64chars) : -1;
}

long base64_decode(const char *s, unsigned char *out, size_t cap, size_t *bad)
{
    size_t n = strlen(s), o = 0;
    if (n % 4) {
        /* Go reports the first byte of the incomplete quantum */
        *bad = n - n % 4;
        for (size_t i = 0; i < n; i++)
            if (b64val(s[i]) < 0) {
                *bad = i;
                break;
            }
        return -1;
    }
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + (size_t)j];
            if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || s[i + 3] == '=')) {
                v[j] = 0;
                pad++;
                continue;
            }
            v[j] = b64val(c);
            if (v[j] < 0 || pad) {
                *bad = i + (size_t)j;
                return -1;
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        for (int j = 0; j < 3 - pad; j++) {
            if (o >= cap) {
                *bad = i;
                return -1;
            }
            out[o++] = b[j];
        }
    }
    return (long)o;
}

char *pin_of_der(const void *der, size_t len)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(der, len, md);
    return base64_encode(md, sizeof(md));
}

int pin_decode(const char *b64, unsigned char out[PIN_LEN], size_t *outlen, struct err **err)
{
    unsigned char buf[256];
    size_t bad = 0;
    long n = base64_decode(b64, buf, sizeof(buf), &bad);
    if (n < 0)
        return err_makex(err, EINVAL,
                         "error decoding tls pin: illegal base64 data at input byte %zu", bad);
    /* A pin of another length can never match; keep it so the handshake
     * fails with the pin message, as Go's does. */
    *outlen = (size_t)n < PIN_LEN ? (size_t)n : PIN_LEN;
    memcpy(out, buf, *outlen);
    if (n != PIN_LEN)
        *outlen = (size_t)n > PIN_LEN ? PIN_LEN + 1 : (size_t)n;
    return 0;
}

/* Replaces OpenSSL's whole chain verification: only the leaf's pin counts. */
static int verify_leaf(X509_STORE_CTX *x, void *arg)
{
    struct pin_check *pc = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    unsigned char *der = NULL;
    int len = leaf ? i2d_X509(leaf, &der) : -1;
    int ok = 0;
    if (len > 0) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256(der, (size_t)len, md);
        ok = pc->want_len == PIN_LEN && !memcmp(md, pc->want, PIN_LEN);
    }
    OPENSSL_free(der);
    if (!ok) {
        pc->mismatch = 1;
        X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
    }
    return ok;
}

void pin_install(void *ssl_ctx, struct pin_check *pc)
{
    SSL_CTX *ctx = ssl_ctx;
    /* VERIFY_PEER makes a failed check abort the handshake. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, verify_leaf, pc);
}
