/* metrics: the router's counters in Prometheus text format. */
#include <stdio.h>

#include "router.h"
#include "strbuf.h"

static void counter(struct strbuf *out, const char *name, const char *help, uint64_t v)
{
    strbuf_addf(out, "# HELP flynn_router_%s %s\n# TYPE flynn_router_%s counter\n"
                     "flynn_router_%s %llu\n",
                name, help, name, name, (unsigned long long)v);
}

void metrics_format(const struct router *r, struct strbuf *out)
{
    struct router_metrics sum = {0};
    /* each worker process counts in its own slot: add them up */
    for (int w = 0; w < r->nworkers; w++) {
        const uint64_t *src = (const uint64_t *)&r->m_all[w];
        uint64_t *dst = (uint64_t *)&sum;
        for (size_t i = 0; i < sizeof(sum) / sizeof(uint64_t); i++)
            dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
    const struct router_metrics *m = &sum;
    counter(out, "connections_total", "client connections accepted", m->conns_accepted);
    strbuf_addf(out, "# TYPE flynn_router_connections_active gauge\n"
                     "flynn_router_connections_active %llu\n",
                (unsigned long long)m->conns_active);
    if (r->nworkers > 1) {
        strbuf_addf(out,
                    "# HELP flynn_router_worker_connections_active client connections "
                    "per worker process\n# TYPE flynn_router_worker_connections_active gauge\n");
        for (int w = 0; w < r->nworkers; w++)
            strbuf_addf(
                out, "flynn_router_worker_connections_active{worker=\"%d\"} %llu\n", w,
                (unsigned long long)__atomic_load_n(&r->m_all[w].conns_active, __ATOMIC_RELAXED));
    }
    counter(out, "tls_handshakes_total", "TLS handshakes completed", m->tls_handshakes);
    counter(out, "tls_errors_total", "TLS connections that failed before a request",
            m->tls_errors);
    counter(out, "requests_total", "request heads read (HTTP/1.x and HTTP/2)", m->requests);
    counter(out, "requests_h2_total", "HTTP/2 requests", m->requests_h2);
    strbuf_addf(out, "# HELP flynn_router_responses_total responses by status class\n"
                     "# TYPE flynn_router_responses_total counter\n");
    for (int i = 1; i <= 5; i++)
        strbuf_addf(out, "flynn_router_responses_total{code=\"%dxx\"} %llu\n", i,
                    (unsigned long long)m->responses[i]);
    counter(out, "no_route_total", "requests for no known route (404)", m->no_route);
    counter(out, "bad_requests_total", "malformed requests (400)", m->bad_requests);
    counter(out, "head_too_large_total", "request heads over the limit (431)",
            m->head_too_large);
    counter(out, "smuggling_total", "requests with ambiguous framing", m->smuggling);
    counter(out, "timeouts_total", "client or backend timeouts", m->timeouts);
    counter(out, "upstream_connects_total", "new backend connections", m->upstream_connects);
    counter(out, "upstream_reuses_total", "requests on pooled backend connections",
            m->upstream_reuses);
    counter(out, "upstream_errors_total", "backend connect failures", m->upstream_errors);
    counter(out, "retries_total", "requests retried on another connection or backend",
            m->retries);
    counter(out, "bad_gateway_total", "requests that failed at the backend (502/504)",
            m->bad_gateway);
    counter(out, "upgrades_total", "upgraded connections (websockets)", m->upgrades);
    counter(out, "bytes_in_total", "bytes read from clients", m->bytes_in);
    counter(out, "bytes_out_total", "bytes written to clients", m->bytes_out);
    counter(out, "tcp_connections_total", "connections on TCP routes", m->tcp_conns);
    counter(out, "reloads_total", "route table loads", m->reloads);
    counter(out, "reload_errors_total", "failed route table loads", m->reload_errors);
    strbuf_addf(out, "# TYPE flynn_router_routes gauge\nflynn_router_routes %zu\n",
                r->table ? r->table->nroutes : (size_t)0);
}
