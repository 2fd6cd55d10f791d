/*
 * events: the live side of GET /events (flynn-api.md §5). Mutating handlers
 * write event rows inside their transaction (api_event); after each commit
 * api_commit calls events_flush, which reads the rows it has not yet
 * delivered and writes each to the SSE subscribers whose filter matches.
 *
 * A subscriber is created by the GET /events handler (api_events.c) and
 * freed when its peer closes the connection or events_free runs.
 */
#ifndef CONTROLLER_EVENTS_H
#define CONTROLLER_EVENTS_H

struct controller;
struct events;
struct httpd_req;

struct events *events_new(struct controller *c);
/* Ends every open stream and frees the hub. */
void events_free(struct events *ev);
/* Delivers events committed since the last flush. */
void events_flush(struct events *ev);
/* GET /formations?since=T as SSE: every ExpandedFormation updated at or
 * after T, then `{}` ("caught up"), then each formation as it changes
 * (deleted ones with "deleted": true). */
void events_formations_stream(struct httpd_req *r, struct controller *c, const char *since);

#endif
