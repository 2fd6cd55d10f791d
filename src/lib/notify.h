/*
 * notify: tell the supervisor (systemd or the test harness) we are ready.
 *
 * Sends "READY=1\nSTATUS=listening on ADDR\n" plus "LISTEN=ADDR" to the
 * datagram socket named by $NOTIFY_SOCKET, if set; otherwise does nothing.
 * The harness reads LISTEN to learn the port of a daemon started on port 0.
 */
#ifndef LIB_NOTIFY_H
#define LIB_NOTIFY_H

void notify_ready(const char *listen_addr);

#endif
