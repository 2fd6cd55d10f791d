#include "httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#include "xalloc.h"

struct sink {
    const struct httpc_req *r;
    struct strbuf *out;
};

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if (s->r->on_data)
        return s->r->on_data(p, len, s->r->arg) < 0 ? 0 : len;
    if (s->out)
        strbuf_add(s->out, p, len);
    return len;
}

int httpc_do(const struct httpc_req *r, struct strbuf *out, struct err **err)
{
    static int inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    CURL *c = curl_easy_init();
    if (!c)
        return err_makex(err, ENOMEM, "curl init");
    struct sink s = {r, out};
    struct curl_slist *h = NULL;
    const char *method = r->method ? r->method : "GET";
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    if (r->timeout_secs)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, r->timeout_secs);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (r->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    cleanup_free char *ct = xasprintf("Content-Type: %s",
                                      r->content_type ? r->content_type : "application/json");
    h = curl_slist_append(h, ct);
    if (r->accept) {
        cleanup_free char *a = xasprintf("Accept: %s", r->accept);
        h = curl_slist_append(h, a);
    }
    h = curl_slist_append(h, "Expect:");
    for (size_t i = 0; r->headers && r->headers[i]; i++)
        h = curl_slist_append(h, r->headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->on_data))
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        err_makex(err, ECONNREFUSED, "%s %s: %s", method, r->url, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return (int)status;
}
