/* /ping, /ca-cert, /status and /.well-known/status. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fsutil.h"
#include "xalloc.h"

void api_ping(struct httpd_req *r, void *arg)
{
    api_reply_ok(r);
}

void api_ca_cert(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    /* no password: served to anyone (cluster add); a password must be right */
    cleanup_free char *pw = api_auth_password(r);
    if (pw && !api_authorized(r, c))
        return;
    if (!c->ca_cert_path)
        return httpd_reply_empty(r, 404);
    size_t len;
    struct err *e = NULL;
    cleanup_free char *pem = fs_read_file(c->ca_cert_path, &len, &e);
    if (!pem)
        return api_reply_err(r, e, NULL);
    httpd_reply_text(r, 200, "application/x-x509-ca-cert", pem, len);
}

static json_t *status_json(void)
{
    return json_pack("{s:{s:s,s:s}}", "data", "status", "healthy", "version", "dev");
}

void api_status(struct httpd_req *r, void *arg)
{
    httpd_reply_json(r, 200, status_json());
}

void api_well_known_status(struct httpd_req *r, void *arg)
{
    json_t *j = status_json();
    char *s = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    httpd_reply_text(r, 200, "application/json", s, strlen(s));
    free(s);
}
