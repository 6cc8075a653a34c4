/*
 * cpgflood: CPG throughput and own-delivery latency through the real libcpg.
 *
 * usage: cpgflood GROUP MSG_BYTES SECONDS [MEMBERS]
 * Joins GROUP, waits until the group has MEMBERS processes (default 1), then calls
 * cpg_mcast_joined(AGREED) as fast as flow control allows for SECONDS, dispatching
 * after every send and waiting on the fd when the library says CS_ERR_TRY_AGAIN. Each
 * message carries the sender's pid and a CLOCK_MONOTONIC send stamp, so the sender
 * measures send-to-own-delivery latency. Prints one JSON line:
 *   {"sent":N,"delivered":D,"own_delivered":O,"seconds":S,"msgs_per_s":R,
 *    "mb_per_s":M,"try_again":T,"lat_us":{"p50":..,"p99":..,"max":..}}
 * Deliveries keep being counted for 2 s after the last send (or until all own
 * messages are back).
 */
#include <corosync/cpg.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAT_MAX (1 << 22)

struct hdr {
	uint32_t pid;
	uint32_t pad;
	uint64_t sent_ns;
};

static uint64_t delivered, own_delivered, members_now;
static uint32_t *lat_us;
static uint64_t lat_n;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void on_deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid, uint32_t pid,
		       void *msg, size_t len)
{
	struct hdr hd;
	delivered++;
	if (len < sizeof(hd))
		return;
	memcpy(&hd, msg, sizeof(hd));
	if (hd.pid == (uint32_t)getpid()) {
		own_delivered++;
		if (lat_n < LAT_MAX)
			lat_us[lat_n++] = (uint32_t)((now_ns() - hd.sent_ns) / 1000);
	}
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g,
		       const struct cpg_address *m, size_t nm, const struct cpg_address *l,
		       size_t nl, const struct cpg_address *j, size_t nj)
{
	members_now = nm;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void wait_fd(cpg_handle_t h, int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) > 0)
		cpg_dispatch(h, CS_DISPATCH_ALL);
}

int main(int argc, char **argv)
{
	cpg_handle_t h;
	cpg_callbacks_t cb = { .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg };
	struct cpg_name group;
	size_t msg_bytes;
	double seconds;
	uint64_t sent = 0, try_again = 0, t0, t_end, t_stop;
	unsigned long want_members;
	int fd, i;
	cs_error_t e;
	char *buf;

	if (argc < 4) {
		fprintf(stderr, "usage: %s GROUP MSG_BYTES SECONDS [MEMBERS]\n", argv[0]);
		return 1;
	}
	group.length = strlen(argv[1]);
	memcpy(group.value, argv[1], group.length);
	msg_bytes = strtoul(argv[2], NULL, 10);
	if (msg_bytes < sizeof(struct hdr))
		msg_bytes = sizeof(struct hdr);
	seconds = atof(argv[3]);
	want_members = argc > 4 ? strtoul(argv[4], NULL, 10) : 1;
	buf = calloc(1, msg_bytes);
	lat_us = malloc(sizeof(uint32_t) * LAT_MAX);
	for (i = 0; i < 300; i++) {
		e = cpg_initialize(&h, &cb);
		if (e == CS_OK)
			break;
		usleep(100000);
	}
	if (e != CS_OK) {
		printf("{\"error\":\"cpg_initialize\",\"cs_error\":%d}\n", e);
		return 1;
	}
	cpg_fd_get(h, &fd);
	while ((e = cpg_join(h, &group)) == CS_ERR_TRY_AGAIN)
		usleep(10000);
	if (e != CS_OK) {
		printf("{\"error\":\"cpg_join\",\"cs_error\":%d}\n", e);
		return 1;
	}
	t_stop = now_ns() + 60ull * 1000000000ull;
	while (members_now < want_members && now_ns() < t_stop)
		wait_fd(h, fd, 50);
	t0 = now_ns();
	t_end = t0 + (uint64_t)(seconds * 1e9);
	while (now_ns() < t_end) {
		struct iovec iov = { .iov_base = buf, .iov_len = msg_bytes };
		struct hdr hd = { .pid = (uint32_t)getpid(), .sent_ns = now_ns() };
		memcpy(buf, &hd, sizeof(hd));
		e = cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov, 1);
		if (e == CS_OK) {
			sent++;
			cpg_dispatch(h, CS_DISPATCH_ALL);
		} else if (e == CS_ERR_TRY_AGAIN) {
			try_again++;
			wait_fd(h, fd, 1);
		} else {
			printf("{\"error\":\"cpg_mcast_joined\",\"cs_error\":%d}\n", e);
			return 1;
		}
	}
	t_stop = now_ns() + 2000000000ull;
	while (own_delivered < sent && now_ns() < t_stop)
		wait_fd(h, fd, 10);
	double secs = (now_ns() - t0) / 1e9;
	double busy = (t_end - t0) / 1e9;
	qsort(lat_us, lat_n, sizeof(uint32_t), cmp_u32);
	printf("{\"sent\":%llu,\"delivered\":%llu,\"own_delivered\":%llu,\"seconds\":%.3f,"
	       "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"try_again\":%llu,"
	       "\"lat_us\":{\"p50\":%u,\"p99\":%u,\"max\":%u}}\n",
	       (unsigned long long)sent, (unsigned long long)delivered,
	       (unsigned long long)own_delivered, secs, own_delivered / busy,
	       own_delivered * (double)msg_bytes / busy / 1e6, (unsigned long long)try_again,
	       lat_n ? lat_us[lat_n / 2] : 0, lat_n ? lat_us[(lat_n * 99) / 100] : 0,
	       lat_n ? lat_us[lat_n - 1] : 0);
	cpg_finalize(h);
	return 0;
}
