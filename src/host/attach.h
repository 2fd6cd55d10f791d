/*
 * attach: Flynn's attach protocol (flynn-api.md §7.3, §11), shared by the
 * host daemon (POST /attach) and the job's shim, which serves the client.
 *
 * After "HTTP/1.1 101" the host writes one state byte (ATTACH_SUCCESS, or
 * ATTACH_ERROR + uint32 length + message), then frames, big-endian:
 *
 *   DATA    3, stream (0 stdin, 1 stdout, 2 stderr), uint32 length, bytes
 *   SIGNAL  4, uint32 signal number                    (client -> job)
 *   EXIT    5, uint32 exit status: the last frame      (job -> client)
 *   ERROR   2, uint32 length, message: ends the stream (job -> client)
 *   RESIZE  6, uint16 rows, uint16 columns             (client -> job)
 *
 * A DATA frame of length 0 on stdin is the client's EOF.
 *
 * Hand-off (daemon -> shim): the daemon answers the HTTP part itself, then
 * connects to the shim's socket JOB_DIR/attach.sock and passes the client's
 * connection as an SCM_RIGHTS descriptor with a header (struct
 * attach_handoff) and the bytes the client sent early. From then on the
 * shim serves the client directly: the daemon can restart meanwhile.
 */
#ifndef HOST_ATTACH_H
#define HOST_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "strbuf.h"

struct event_base;
struct httpd_req;
struct jobs;

#define ATTACH_PROTOCOL "flynn-attach/0"
#define ATTACH_SOCKET "attach.sock" /* in the job's directory */

enum attach_state { ATTACH_SUCCESS = 0, ATTACH_WAITING = 1, ATTACH_ERROR_STATE = 2 };

enum attach_frame_type {
    ATTACH_ERROR = 2,
    ATTACH_DATA = 3,
    ATTACH_SIGNAL = 4,
    ATTACH_EXIT = 5,
    ATTACH_RESIZE = 6,
};

/* AttachReq flags (Flynn's); only informational here: the shim serves
 * stdin when the job has it and always streams stdout and stderr. */
enum attach_flags {
    ATTACH_FLAG_STDOUT = 1 << 0,
    ATTACH_FLAG_STDERR = 1 << 1,
    ATTACH_FLAG_STDIN = 1 << 2,
    ATTACH_FLAG_LOGS = 1 << 3,
    ATTACH_FLAG_STREAM = 1 << 4,
};

struct attach_frame {
    enum attach_frame_type type;
    int stream;          /* DATA */
    const char *data;    /* DATA, ERROR: borrowed from the buffer */
    uint32_t len;        /* DATA, ERROR */
    uint32_t num;        /* SIGNAL, EXIT */
    uint16_t rows, cols; /* RESIZE */
};

void attach_put_data(struct strbuf *out, int stream, const void *data, size_t len);
void attach_put_exit(struct strbuf *out, uint32_t status);
void attach_put_error(struct strbuf *out, const char *msg);
/* Parses the frame at the start of buf. Returns its size, 0 when more
 * bytes are needed, -1 on an unknown frame type (skip one byte, as Flynn's
 * client does). */
long attach_parse(const char *buf, size_t len, struct attach_frame *f);

/* What the shim needs to know about a new client. */
struct attach_handoff {
    uint32_t flags;
    uint16_t height, width; /* 0: unknown */
};

/* Passes fd (not taken) with h and early bytes over the unix stream socket
 * sock. */
int attach_handoff_send(int sock, int fd, const struct attach_handoff *h, const void *early,
                        size_t early_len, struct err **err);
/* Reads a hand-off from sock (blocking, with the socket's receive timeout);
 * returns the client's descriptor (close-on-exec, non-blocking) and fills h
 * and early. */
int attach_handoff_recv(int sock, struct attach_handoff *h, struct strbuf *early, struct err **err);

/* POST /attach (attach_api.c): the host API's handler, AttachReq
 * {"job_id","flags","height","width"} as body. A running job's client is
 * handed to its shim; an ended job's client gets its log and exit status. */
void attach_api_handle(struct httpd_req *r, struct jobs *jobs, struct event_base *base);

#endif
