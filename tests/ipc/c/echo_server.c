/* Test server on Debian's libqb in socket mode: the same echo service as
 * tests/ipc/echo_service.py (response = payload reversed, then one event with id
 * + 1000 and the payload). Usage: echo_server <service>. Prints "READY <pid>" once
 * listening; SIGTERM stops the loop and destroys the service (removing its files). */
#include <qb/qbipcs.h>
#include <qb/qbloop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ECHO_EVENT_OFFSET 1000
#define MAX_MSG (1024 * 1024)

static qb_loop_t *loop;

static int32_t accept_fn(qb_ipcs_connection_t *c, uid_t uid, gid_t gid) { return 0; }

static int32_t msg_fn(qb_ipcs_connection_t *c, void *data, size_t size)
{
	struct qb_ipc_request_header *rq = data;
	size_t len = (size_t)rq->size - sizeof(*rq);
	const char *in = (const char *)data + sizeof(*rq);
	struct qb_ipc_response_header *rs = malloc(sizeof(*rs) + len);
	char *out = (char *)rs + sizeof(*rs);
	for (size_t i = 0; i < len; i++) out[i] = in[len - 1 - i];
	rs->id = rq->id; rs->size = (int32_t)(sizeof(*rs) + len); rs->error = 0;
	qb_ipcs_response_send(c, rs, rs->size);
	memcpy(out, in, len);
	rs->id = rq->id + ECHO_EVENT_OFFSET;
	qb_ipcs_event_send(c, rs, rs->size);
	free(rs);
	return 0;
}

static int32_t job_add(enum qb_loop_priority p, void *d, qb_loop_job_dispatch_fn fn)
{ return qb_loop_job_add(loop, p, d, fn); }
static int32_t dispatch_add(enum qb_loop_priority p, int32_t fd, int32_t evts, void *d,
			    qb_ipcs_dispatch_fn_t fn)
{ return qb_loop_poll_add(loop, p, fd, evts, d, fn); }
static int32_t dispatch_mod(enum qb_loop_priority p, int32_t fd, int32_t evts, void *d,
			    qb_ipcs_dispatch_fn_t fn)
{ return qb_loop_poll_mod(loop, p, fd, evts, d, fn); }
static int32_t dispatch_del(int32_t fd) { return qb_loop_poll_del(loop, fd); }

static int32_t on_sigterm(int32_t sig, void *d) { qb_loop_stop(loop); return 0; }

int main(int argc, char **argv)
{
	if (argc != 2) { fprintf(stderr, "usage: echo_server service\n"); return 2; }
	struct qb_ipcs_service_handlers sh = { .connection_accept = accept_fn, .msg_process = msg_fn };
	struct qb_ipcs_poll_handlers ph = { .job_add = job_add, .dispatch_add = dispatch_add,
		.dispatch_mod = dispatch_mod, .dispatch_del = dispatch_del };
	loop = qb_loop_create();
	qb_ipcs_service_t *s = qb_ipcs_create(argv[1], 0, QB_IPC_SOCKET, &sh);
	if (s == NULL) { perror("qb_ipcs_create"); return 1; }
	qb_ipcs_poll_handlers_set(s, &ph);
	qb_ipcs_enforce_buffer_size(s, MAX_MSG);
	qb_loop_signal_add(loop, QB_LOOP_HIGH, SIGTERM, NULL, on_sigterm, NULL);
	if (qb_ipcs_run(s) != 0) { perror("qb_ipcs_run"); return 1; }
	printf("READY %d\n", getpid());
	fflush(stdout);
	qb_loop_run(loop);
	qb_ipcs_destroy(s);
	qb_loop_destroy(loop);
	return 0;
}
