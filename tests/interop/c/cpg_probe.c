/*
 * cpg_probe: a libcpg client for interoperability tests, built against the system's
 * libcpg (Debian's corosync 3.1.7 libcpg-dev). It joins one group (model V1 with the
 * initial totem configuration), multicasts numbered messages, and prints every callback
 * as one JSON line on stdout so a test can compare what each client saw:
 *
 *   {"ev":"local","nodeid":N}
 *   {"ev":"confchg","group":"g","members":[[n,pid],...],"left":[[n,pid,reason]...],"joined":[...]}
 *   {"ev":"totem","ring":[nodeid,seq],"members":[...]}
 *   {"ev":"deliver","nodeid":N,"pid":P,"len":L,"sender_seq":S,"ok":true}
 *   {"ev":"sent","count":C}  {"ev":"done", ...}
 *
 * usage: cpg_probe GROUP SEND_COUNT MSG_BYTES EXPECT_DELIVERIES TIMEOUT_S [START_DELAY_MS]
 * It sends SEND_COUNT messages (retrying CS_ERR_TRY_AGAIN), keeps dispatching until it
 * has delivered EXPECT_DELIVERIES messages or TIMEOUT_S passed, then leaves the group,
 * waits for its own leave confchg, and exits 0 (2 on a payload error, 1 on API errors).
 * A payload is "<nodeid> <pid> <seq>" then filler bytes (seq % 251), checked on delivery.
 */
#include <corosync/cpg.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long delivered;
static int payload_errors;
static int left_self;
static unsigned int local_nodeid;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_group(const struct cpg_name *g)
{
	printf("\"group\":\"%.*s\"", (int)g->length, g->value);
}

static void print_list(const char *name, const struct cpg_address *l, size_t n, int reasons)
{
	size_t i;
	printf(",\"%s\":[", name);
	for (i = 0; i < n; i++) {
		if (reasons)
			printf("%s[%u,%u,%u]", i ? "," : "", l[i].nodeid, l[i].pid, l[i].reason);
		else
			printf("%s[%u,%u]", i ? "," : "", l[i].nodeid, l[i].pid);
	}
	printf("]");
}

static void on_deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid, uint32_t pid,
		       void *msg, size_t len)
{
	unsigned int s_node = 0, s_pid = 0;
	unsigned long seq = 0;
	int ok = 1;
	size_t i, hdr;
	char head[64];
	size_t n = len < sizeof(head) - 1 ? len : sizeof(head) - 1;

	memcpy(head, msg, n);
	head[n] = 0;
	if (sscanf(head, "%u %u %lu", &s_node, &s_pid, &seq) != 3 || s_node != nodeid || s_pid != pid) {
		ok = 0;
	} else {
		hdr = strlen(head) + 1;
		for (i = hdr; i < len; i++) {
			if (((unsigned char *)msg)[i] != (unsigned char)(seq % 251)) {
				ok = 0;
				break;
			}
		}
	}
	if (!ok)
		payload_errors++;
	delivered++;
	printf("{\"ev\":\"deliver\",");
	print_group(g);
	printf(",\"nodeid\":%u,\"pid\":%u,\"len\":%zu,\"sender_seq\":%lu,\"ok\":%s}\n", nodeid, pid,
	       len, seq, ok ? "true" : "false");
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g,
		       const struct cpg_address *m, size_t nm,
		       const struct cpg_address *l, size_t nl,
		       const struct cpg_address *j, size_t nj)
{
	size_t i;
	printf("{\"ev\":\"confchg\",");
	print_group(g);
	print_list("members", m, nm, 0);
	print_list("left", l, nl, 1);
	print_list("joined", j, nj, 1);
	printf("}\n");
	for (i = 0; i < nl; i++)
		if (l[i].nodeid == local_nodeid && l[i].pid == (uint32_t)getpid())
			left_self = 1;
}

static void on_totem(cpg_handle_t h, struct cpg_ring_id ring, uint32_t n, const uint32_t *members)
{
	uint32_t i;
	printf("{\"ev\":\"totem\",\"ring\":[%u,%llu],\"members\":[", ring.nodeid,
	       (unsigned long long)ring.seq);
	for (i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", members[i]);
	printf("]}\n");
}

static int dispatch_for(cpg_handle_t h, int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, timeout_ms);
	if (r > 0) {
		cs_error_t e = cpg_dispatch(h, CS_DISPATCH_ALL);
		if (e != CS_OK && e != CS_ERR_TRY_AGAIN) {
			printf("{\"ev\":\"error\",\"call\":\"cpg_dispatch\",\"cs_error\":%d}\n", e);
			return -1;
		}
	}
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	cpg_handle_t h;
	cpg_model_v1_data_t model = { 0 };
	struct cpg_name group;
	cs_error_t e;
	int fd, i;
	unsigned long send_count, expect, sent = 0;
	size_t msg_bytes;
	double timeout_s, deadline, start_at;
	char *buf;

	if (argc < 6) {
		fprintf(stderr, "usage: %s GROUP SEND_COUNT MSG_BYTES EXPECT TIMEOUT_S [START_DELAY_MS]\n",
			argv[0]);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	group.length = strlen(argv[1]);
	memcpy(group.value, argv[1], group.length);
	send_count = strtoul(argv[2], NULL, 10);
	msg_bytes = strtoul(argv[3], NULL, 10);
	expect = strtoul(argv[4], NULL, 10);
	timeout_s = atof(argv[5]);
	start_at = now_s() + (argc > 6 ? atof(argv[6]) / 1000.0 : 0.0);
	if (msg_bytes < 32)
		msg_bytes = 32;
	buf = malloc(msg_bytes);

	model.model = CPG_MODEL_V1;
	model.cpg_deliver_fn = on_deliver;
	model.cpg_confchg_fn = on_confchg;
	model.cpg_totem_confchg_fn = on_totem;
	model.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF;
	for (i = 0; i < 200; i++) {   /* the daemon refuses clients until its first sync */
		e = cpg_model_initialize(&h, CPG_MODEL_V1, (cpg_model_data_t *)&model, NULL);
		if (e == CS_OK)
			break;
		usleep(100000);
	}
	if (e != CS_OK) {
		printf("{\"ev\":\"error\",\"call\":\"cpg_model_initialize\",\"cs_error\":%d}\n", e);
		return 1;
	}
	cpg_local_get(h, &local_nodeid);
	printf("{\"ev\":\"local\",\"nodeid\":%u,\"pid\":%d}\n", local_nodeid, getpid());
	cpg_fd_get(h, &fd);
	while ((e = cpg_join(h, &group)) == CS_ERR_TRY_AGAIN)
		usleep(10000);
	if (e != CS_OK) {
		printf("{\"ev\":\"error\",\"call\":\"cpg_join\",\"cs_error\":%d}\n", e);
		return 1;
	}
	deadline = now_s() + timeout_s;
	while (now_s() < deadline && (delivered < expect || sent < send_count)) {
		if (sent < send_count && now_s() >= start_at) {
			struct iovec iov;
			int hdr = snprintf(buf, msg_bytes, "%u %d %lu", local_nodeid, getpid(), sent);
			memset(buf + hdr + 1, (int)(sent % 251), msg_bytes - hdr - 1);
			iov.iov_base = buf;
			iov.iov_len = msg_bytes;
			e = cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov, 1);
			if (e == CS_OK)
				sent++;
			else if (e != CS_ERR_TRY_AGAIN) {
				printf("{\"ev\":\"error\",\"call\":\"cpg_mcast_joined\",\"cs_error\":%d}\n", e);
				return 1;
			}
			if (dispatch_for(h, fd, e == CS_OK ? 0 : 2) < 0)
				return 1;
		} else if (dispatch_for(h, fd, 50) < 0) {
			return 1;
		}
	}
	printf("{\"ev\":\"sent\",\"count\":%lu}\n", sent);
	while ((e = cpg_leave(h, &group)) == CS_ERR_TRY_AGAIN)
		usleep(10000);
	deadline = now_s() + 10;
	while (!left_self && now_s() < deadline)
		if (dispatch_for(h, fd, 50) < 0)
			return 1;
	printf("{\"ev\":\"done\",\"delivered\":%lu,\"payload_errors\":%d,\"left\":%s}\n", delivered,
	       payload_errors, left_self ? "true" : "false");
	cpg_finalize(h);
	free(buf);
	return payload_errors ? 2 : 0;
}
