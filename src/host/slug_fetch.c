/* slug_download: the network half of the slug cache, in its own object so
 * that only flynn-host (`flynn-host fetch-slug`), not the per-job shim,
 * links libcurl and OpenSSL. */
#include "slug.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SHA_HEX 64
/* an archive without a declared size may not grow beyond this */
#define SLUG_MAX_BYTES (8LL << 30)

struct sink {
    int fd;
    EVP_MD_CTX *md;
    long long got, max;
    int write_errno;
    int too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct sink *k = arg;
    size_t len = size * n;
    if (k->got + (long long)len > k->max) {
        k->too_big = 1;
        return 0;
    }
    EVP_DigestUpdate(k->md, p, len);
    k->got += (long long)len;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(k->fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            k->write_errno = errno;
            return 0;
        }
        off += (size_t)w;
    }
    return len;
}

static void hex(char out[SHA_HEX + 1], const unsigned char *d, unsigned n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned i = 0;
    for (; i < n && i < SHA_HEX / 2; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * i] = '\0';
}

int slug_download(const struct slug_ref *s, int fd, struct err **err)
{
    static int curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    CURL *c = curl_easy_init();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!c || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        curl_easy_cleanup(c);
        EVP_MD_CTX_free(md);
        return err_makex(err, ENOMEM, "fetch slug '%s': cannot set up curl or SHA-256", s->url);
    }
    struct sink k = {.fd = fd, .md = md, .max = s->size > 0 ? s->size : SLUG_MAX_BYTES};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* the blobstore is ours: no proxy */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "flynn-host");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* no total timeout (slugs can be large); give up on a stalled transfer */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    char got[SHA_HEX + 1] = "";
    int ret = 0;
    if (k.too_big)
        ret = err_makex(err, EFBIG, "fetch slug '%s': larger than %s %lld bytes", s->url,
                        s->size > 0 ? "its declared size of" : "the limit of", k.max);
    else if (k.write_errno)
        ret = err_makex(err, k.write_errno, "fetch slug '%s': write the download: %s", s->url,
                        strerror(k.write_errno));
    else if (rc == CURLE_HTTP_RETURNED_ERROR || (rc == CURLE_OK && status != 200))
        ret = err_makex(err, EIO, "fetch slug '%s': HTTP status %ld", s->url, status);
    else if (rc != CURLE_OK)
        ret = err_makex(err, EIO, "fetch slug '%s': %s", s->url,
                        cerr[0] ? cerr : curl_easy_strerror(rc));
    else if (s->size > 0 && k.got != s->size)
        ret = err_makex(err, EIO, "fetch slug '%s': size mismatch: got %lld bytes, want %lld",
                        s->url, k.got, s->size);
    else if (EVP_DigestFinal_ex(md, d, &dn) != 1 || (hex(got, d, dn), strcasecmp(got, s->sha256)))
        ret = err_makex(err, EIO, "fetch slug '%s': checksum mismatch: got sha256 %s, want %s",
                        s->url, got, s->sha256);
    EVP_MD_CTX_free(md);
    curl_easy_cleanup(c);
    return ret;
}
