/* Test client on Debian's libqb: connects to an echo service, does N round trips
 * (response must be the request payload reversed) and receives the event sent after
 * each request (same payload). Usage: echo_client <service> <rounds> <payload_bytes>
 * Exit 0 on success; otherwise prints what went wrong to stderr. */
#include <qb/qbipcc.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define ECHO_EVENT_OFFSET 1000
#define MAX_MSG (1024 * 1024)

struct req { struct qb_ipc_request_header hdr; char data[]; };
struct res { struct qb_ipc_response_header hdr; char data[]; };

int main(int argc, char **argv)
{
	if (argc != 4) { fprintf(stderr, "usage: echo_client service rounds bytes\n"); return 2; }
	int rounds = atoi(argv[2]);
	size_t len = (size_t)atol(argv[3]);
	qb_ipcc_connection_t *c = qb_ipcc_connect(argv[1], MAX_MSG);
	if (c == NULL) { fprintf(stderr, "connect: %s\n", strerror(errno)); return 1; }
	struct req *rq = malloc(sizeof(*rq) + len);
	struct res *rs = malloc(MAX_MSG);
	char *want = malloc(len + 1);
	for (int r = 0; r < rounds; r++) {
		for (size_t i = 0; i < len; i++) rq->data[i] = (char)('a' + (i * 7 + r) % 26);
		for (size_t i = 0; i < len; i++) want[i] = rq->data[len - 1 - i];
		rq->hdr.id = r;
		rq->hdr.size = (int32_t)(sizeof(*rq) + len);
		struct iovec iov = { rq, sizeof(*rq) + len };
		ssize_t n = qb_ipcc_sendv_recv(c, &iov, 1, rs, MAX_MSG, -1);
		if (n != (ssize_t)(sizeof(*rs) + len) || rs->hdr.id != r || rs->hdr.error != 0 ||
		    memcmp(rs->data, want, len) != 0) {
			fprintf(stderr, "round %d: bad response n=%zd id=%d err=%d\n", r, n,
				rs->hdr.id, rs->hdr.error);
			return 1;
		}
		n = qb_ipcc_event_recv(c, rs, MAX_MSG, -1);
		if (n != (ssize_t)(sizeof(*rs) + len) || rs->hdr.id != r + ECHO_EVENT_OFFSET ||
		    memcmp(rs->data, rq->data, len) != 0) {
			fprintf(stderr, "round %d: bad event n=%zd id=%d\n", r, n, rs->hdr.id);
			return 1;
		}
	}
	qb_ipcc_disconnect(c);
	printf("OK %d\n", rounds);
	return 0;
}
