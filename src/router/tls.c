/*
 * tls: the router's TLS contexts. The cluster's wildcard certificate is
 * the default context; SNI picks a route's own certificate when it has
 * one. TLS 1.2 and 1.3 only. ALPN offers h2 (when built in) and http/1.1.
 */
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

bool tls_h2_enabled = true;

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    /* server preference: h2, then http/1.1 */
    static const char *prefs[] = {"h2", "http/1.1"};
    for (size_t k = tls_h2_enabled ? 0 : 1; k < 2; k++) {
        size_t pl = strlen(prefs[k]);
        for (unsigned i = 0; i < inlen;) {
            unsigned l = in[i];
            if (i + 1 + l > inlen)
                break;
            if (l == pl && !memcmp(in + i + 1, prefs[k], pl)) {
                *out = in + i + 1;
                *outlen = (unsigned char)l;
                return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + l;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int sni_cb(SSL *ssl, int *ad, void *arg)
{
    struct router *r = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !r->table)
        return SSL_TLSEXT_ERR_OK;
    struct route *rt = route_table_lookup_domain(r->table, name, strlen(name));
    if (rt && rt->ssl)
        SSL_set_SSL_CTX(ssl, rt->ssl);
    return SSL_TLSEXT_ERR_OK;
}

static int ssl_errf(struct err **err, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return err_makex(err, EINVAL, "%s: %s", what, e ? buf : "unknown error");
}

static int load_pem(SSL_CTX *ctx, const char *cert, const char *key, struct err **err)
{
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (!x) {
        BIO_free(b);
        return ssl_errf(err, "read certificate");
    }
    int rc = SSL_CTX_use_certificate(ctx, x);
    X509_free(x);
    if (rc != 1) {
        BIO_free(b);
        return ssl_errf(err, "use certificate");
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            BIO_free(b);
            return ssl_errf(err, "add chain certificate");
        }
    ERR_clear_error(); /* the end of the PEM stream */
    BIO_free(b);
    b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k)
        return ssl_errf(err, "read private key");
    rc = SSL_CTX_use_PrivateKey(ctx, k);
    EVP_PKEY_free(k);
    if (rc != 1)
        return ssl_errf(err, "use private key");
    return 0;
}

struct ssl_ctx_st *tls_ctx_new(const char *cert, const char *key, bool from_files,
                               struct err **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_errf(err, "new TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* one read per TLS record or more instead of two (header, then body);
     * what it reads past a record is fetched by tls_read_pending */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    static const unsigned char sid[] = "flynn-router";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    if (from_files) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            ssl_errf(err, "load certificate");
            err_wrap(err, "'%s'", cert);
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            ssl_errf(err, "load key");
            err_wrap(err, "'%s'", key);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (load_pem(ctx, cert, key, err) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_errf(err, "certificate and key do not match");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

void tls_default_set_sni(struct router *r)
{
    if (!r->ssl_default)
        return;
    SSL_CTX_set_tlsext_servername_callback(r->ssl_default, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(r->ssl_default, r);
}

int tls_table_prepare(struct router *r, struct route_table *t, struct err **err)
{
    for (size_t i = 0; i < t->nroutes; i++) {
        struct route *rt = &t->routes[i];
        if (!rt->cert_pem || rt->ssl)
            continue;
        /* routes of one domain often share one certificate: build it once */
        for (size_t j = 0; j < i && !rt->ssl; j++)
            if (t->routes[j].ssl && !strcmp(t->routes[j].cert_pem, rt->cert_pem) &&
                !strcmp(t->routes[j].key_pem, rt->key_pem)) {
                SSL_CTX_up_ref(t->routes[j].ssl);
                rt->ssl = t->routes[j].ssl;
            }
        if (rt->ssl)
            continue;
        rt->ssl = tls_ctx_new(rt->cert_pem, rt->key_pem, false, err);
        if (!rt->ssl)
            return err_wrap(err, "route '%s' (%s)", rt->id, rt->domain);
    }
    return 0;
}

void tls_read_pending(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl && SSL_has_pending(ssl) && (bufferevent_get_enabled(bev) & EV_READ) &&
        bufferevent_getfd(bev) >= 0)
        event_active(&bev->ev_read, EV_READ, 1);
}
