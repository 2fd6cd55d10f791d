/*
 * shim_attach: the shim's side of attach (attach.h). It accepts the clients
 * the daemon hands over on JOB_DIR/attach.sock and, for the attached one:
 *  - sends the job's output as DATA frames (stream 1 stdout, 2 stderr; a
 *    tty's output is stdout) and the job's exit status as the last frame;
 *  - writes its stdin frames to the job's stdin (a pipe, or the pty master),
 *    and closes the pipe on the zero-length frame (stdin's EOF);
 *  - applies RESIZE frames to the pty and sends SIGNAL frames to the job's
 *    init (flynn-init, which passes them to the command's process group).
 *
 * One client at a time: a second one gets an ERROR frame. A client that goes
 * away closes the job's stdin pipe (a tty job gets SIGHUP, as on a hang-up);
 * the controller stops the job (flynn-api.md §7).
 *
 * Output is never lost on the way to an attached client: while the client's
 * queue is over SHIM_ATTACH_QUEUE_MAX bytes, shim_attach_output_ok() is
 * false and the shim stops reading the job's output. Before the first client
 * comes, output is kept for it (attached jobs) up to the same size; the shim
 * of an attached job waits for that client before it starts the job anyway
 * (shim_attach_wait), so the client sees everything from the start.
 *
 * Everything is driven by the shim's poll loop; no call blocks except
 * shim_attach_wait and the bounded flush in shim_attach_finish.
 */
#ifndef HOST_SHIM_ATTACH_H
#define HOST_SHIM_ATTACH_H

#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#define SHIM_ATTACH_QUEUE_MAX (1 << 20)
#define SHIM_ATTACH_NFDS 3 /* pollfds shim_attach_poll may fill */

struct shim_attach;

/* listen_fd (taken): the socket the daemon made. keep_first: keep output
 * for the first client (attached jobs). */
struct shim_attach *shim_attach_new(const char *job_id, int listen_fd, bool keep_first);
void shim_attach_free(struct shim_attach *a);

/* Before the job starts: waits up to timeout_ms for the first client.
 * Returns true when one is attached. */
bool shim_attach_wait(struct shim_attach *a, int timeout_ms);
/* The window size the first client gave (0 when none). */
void shim_attach_size(const struct shim_attach *a, unsigned *rows, unsigned *cols);

/* The job runs: init gets the client's signals; stdin_pipe (taken, -1:
 * none) is the write end of the job's stdin; pty (borrowed, -1: none) is
 * the master of the job's terminal, stdin and resize go there. */
void shim_attach_started(struct shim_attach *a, pid_t init, int stdin_pipe, int pty);

/* Poll loop: fills up to SHIM_ATTACH_NFDS entries, returns how many; after
 * poll, shim_attach_handle gets the same entries back. */
int shim_attach_poll(struct shim_attach *a, struct pollfd *p);
void shim_attach_handle(struct shim_attach *a, const struct pollfd *p, int n);

/* Output of the job (stream 1 stdout, 2 stderr). */
void shim_attach_output(struct shim_attach *a, int stream, const void *buf, size_t len);
/* False while the client's queue is full: stop reading the job's output. */
bool shim_attach_output_ok(const struct shim_attach *a);

/* The job ended with status (exit code, 128+N for signal N), or could not
 * start (msg, an ERROR frame): sends that last and what is still queued,
 * waiting at most timeout_ms, and closes the client. */
void shim_attach_finish(struct shim_attach *a, int status, const char *msg, int timeout_ms);

#endif
