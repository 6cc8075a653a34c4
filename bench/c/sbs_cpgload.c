/*
 * sbs_cpgload: the CPG load/latency client of bench/bench_side_by_side.py, through the
 * real libcpg (so the same binary measures Corosync and coroproc).
 *
 * usage: sbs_cpgload GROUP MSG_BYTES SECONDS MEMBERS SENDERS RATE ROLE
 * (SBS_SAMPLES=PATH in the environment: a sender also writes its samples, dump_samples)
 *   ROLE s = sender, r = receive-only; RATE 0 = as fast as flow control allows, else
 *   messages per second (paced from the start time, so a late send does not lower it).
 * Every instance joins GROUP and waits until it has MEMBERS processes (start barrier for
 * concurrent senders and receivers). A sender multicasts CPG_TYPE_AGREED messages for
 * SECONDS, then an END marker carrying its count. Every instance counts data deliveries
 * from all senders until it has seen SENDERS END markers (or 60 s pass), and prints one
 * JSON line:
 *   {"role":"s","sent":N,"delivered":D,"expected":E,"ends":K,"msgs_per_s":R,"mb_per_s":M,
 *    "try_again":T,"own_us":{"p50":..,"p99":..,"max":..},"remote_us":{...}}
 * msgs_per_s = data deliveries / (last data delivery - earliest send stamp delivered):
 * the rate this instance saw the cluster deliver. Latency = CLOCK_MONOTONIC send stamp
 * (taken just before the accepted cpg_mcast_joined) to delivery; all nodes of a bench
 * run share one host, so the stamp is valid on every node ("remote" = others' messages).
 */
#define _GNU_SOURCE /* ppoll */
#include <corosync/cpg.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAT_MAX (1 << 21)
#define MAGIC 0x53425331u
#define KIND_DATA 1u
#define KIND_END 2u
#define END_WAIT_NS (60ull * 1000000000ull)

struct hdr {
	uint32_t magic;
	uint32_t kind;
	uint32_t pid;
	uint32_t pad;
	uint64_t sent_ns;
	uint64_t count; /* END: data messages this sender sent */
};

static uint64_t delivered, expected, ends, members_now, first_sent_ns = UINT64_MAX, last_deliv_ns;
static uint32_t *own_us, *remote_us;
static uint64_t *own_sent_ns; /* send stamp of each own_us sample (SBS_SAMPLES) */
static uint64_t own_n, remote_n;

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
	uint64_t t = now_ns();

	if (len < sizeof(hd))
		return;
	memcpy(&hd, msg, sizeof(hd));
	if (hd.magic != MAGIC)
		return;
	if (hd.kind == KIND_END) {
		ends++;
		expected += hd.count;
		return;
	}
	delivered++;
	last_deliv_ns = t;
	if (hd.sent_ns < first_sent_ns)
		first_sent_ns = hd.sent_ns;
	if (hd.pid == (uint32_t)getpid()) {
		if (own_n < LAT_MAX) {
			own_sent_ns[own_n] = hd.sent_ns;
			own_us[own_n++] = (uint32_t)((t - hd.sent_ns) / 1000);
		}
	} else if (remote_n < LAT_MAX) {
		remote_us[remote_n++] = (uint32_t)((t - hd.sent_ns) / 1000);
	}
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g,
		       const struct cpg_address *m, size_t nm, const struct cpg_address *l,
		       size_t nl, const struct cpg_address *j, size_t nj)
{
	members_now = nm;
}

/* SBS_SAMPLES=PATH: every own-delivery sample as "send CLOCK_MONOTONIC ns, latency us"
 * lines in PATH.<pid>, before print_pcts sorts them (where in time the tail falls). */
static void dump_samples(void)
{
	const char *path = getenv("SBS_SAMPLES");
	char name[4096];
	FILE *f;

	if (path == NULL || own_n == 0)
		return;
	snprintf(name, sizeof(name), "%s.%d", path, (int)getpid());
	if ((f = fopen(name, "w")) == NULL)
		return;
	for (uint64_t i = 0; i < own_n; i++)
		fprintf(f, "%llu %u\n", (unsigned long long)own_sent_ns[i], own_us[i]);
	fclose(f);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sleep on the CPG fd for up to timeout_ns (ppoll: a paced sender must not spin for
 * sub-millisecond waits on a 2-vCPU machine), dispatching whatever arrives. */
static void wait_fd_ns(cpg_handle_t h, int fd, uint64_t timeout_ns)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = timeout_ns / 1000000000ull,
			       .tv_nsec = timeout_ns % 1000000000ull };
	if (ppoll(&p, 1, &ts, NULL) > 0)
		cpg_dispatch(h, CS_DISPATCH_ALL);
}

static void wait_fd(cpg_handle_t h, int fd, int timeout_ms)
{
	wait_fd_ns(h, fd, (uint64_t)timeout_ms * 1000000ull);
}

static void print_pcts(const char *name, uint32_t *v, uint64_t n)
{
	qsort(v, n, sizeof(uint32_t), cmp_u32);
	if (n == 0) {
		printf("\"%s\":null", name);
		return;
	}
	printf("\"%s\":{\"n\":%llu,\"p50\":%u,\"p99\":%u,\"max\":%u}", name, (unsigned long long)n,
	       v[n / 2], v[(n * 99) / 100], v[n - 1]);
}

/* Multicast one message, waiting out flow control; returns 0 or the cs_error. */
static int send_one(cpg_handle_t h, int fd, char *buf, size_t bytes, struct hdr *hd,
		    uint64_t *try_again)
{
	struct iovec iov = { .iov_base = buf, .iov_len = bytes };
	cs_error_t e;

	for (;;) {
		hd->sent_ns = now_ns();
		memcpy(buf, hd, sizeof(*hd));
		e = cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov, 1);
		if (e == CS_OK) {
			cpg_dispatch(h, CS_DISPATCH_ALL);
			return 0;
		}
		if (e != CS_ERR_TRY_AGAIN)
			return e;
		(*try_again)++;
		wait_fd(h, fd, 1);
	}
}

int main(int argc, char **argv)
{
	cpg_handle_t h;
	cpg_callbacks_t cb = { .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg };
	struct cpg_name group;
	struct hdr hd = { .magic = MAGIC, .kind = KIND_DATA };
	uint64_t sent = 0, try_again = 0, t0, t_end, deadline, want_members, senders, rate;
	size_t msg_bytes;
	int fd, i, sender, e = CS_OK;
	char *buf;

	if (argc != 8 || (argv[7][0] != 's' && argv[7][0] != 'r')) {
		fprintf(stderr, "usage: %s GROUP MSG_BYTES SECONDS MEMBERS SENDERS RATE s|r\n", argv[0]);
		return 2;
	}
	group.length = strlen(argv[1]);
	memcpy(group.value, argv[1], group.length);
	msg_bytes = strtoul(argv[2], NULL, 10);
	if (msg_bytes < sizeof(struct hdr))
		msg_bytes = sizeof(struct hdr);
	want_members = strtoull(argv[4], NULL, 10);
	senders = strtoull(argv[5], NULL, 10);
	rate = strtoull(argv[6], NULL, 10);
	sender = argv[7][0] == 's';
	buf = calloc(1, msg_bytes);
	own_us = malloc(sizeof(uint32_t) * LAT_MAX);
	remote_us = malloc(sizeof(uint32_t) * LAT_MAX);
	own_sent_ns = malloc(sizeof(uint64_t) * LAT_MAX);
	hd.pid = (uint32_t)getpid();
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
	deadline = now_ns() + END_WAIT_NS;
	while (members_now < want_members && now_ns() < deadline)
		wait_fd(h, fd, 50);
	if (members_now < want_members) {
		printf("{\"error\":\"members\",\"have\":%llu,\"want\":%llu}\n",
		       (unsigned long long)members_now, (unsigned long long)want_members);
		return 1;
	}
	e = 0; /* from here on e is send_one's result: 0 or a cs_error (CS_OK is 1) */
	t0 = now_ns();
	t_end = t0 + (uint64_t)(atof(argv[3]) * 1e9);
	while (sender && now_ns() < t_end) {
		if (rate) {
			uint64_t due = t0 + sent * 1000000000ull / rate, t = now_ns();
			if (t < due) {
				wait_fd_ns(h, fd, due - t);
				continue;
			}
		}
		if ((e = send_one(h, fd, buf, msg_bytes, &hd, &try_again)) != 0)
			break;
		sent++;
	}
	if (sender && e == 0) {
		struct hdr end = { .magic = MAGIC, .kind = KIND_END, .pid = hd.pid, .count = sent };
		e = send_one(h, fd, buf, msg_bytes, &end, &try_again);
	}
	if (e != 0) {
		printf("{\"error\":\"cpg_mcast_joined\",\"cs_error\":%d}\n", e);
		return 1;
	}
	deadline = now_ns() + END_WAIT_NS + (sender ? 0 : (uint64_t)(atof(argv[3]) * 1e9));
	while (ends < senders && now_ns() < deadline)
		wait_fd(h, fd, 10);
	dump_samples();
	double span_s = last_deliv_ns > first_sent_ns ? (last_deliv_ns - first_sent_ns) / 1e9 : 0;
	double r = span_s > 0 ? delivered / span_s : 0;
	printf("{\"role\":\"%c\",\"sent\":%llu,\"delivered\":%llu,\"expected\":%llu,\"ends\":%llu,"
	       "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"try_again\":%llu,",
	       argv[7][0], (unsigned long long)sent, (unsigned long long)delivered,
	       (unsigned long long)expected, (unsigned long long)ends, r, r * msg_bytes / 1e6,
	       (unsigned long long)try_again);
	print_pcts("own_us", own_us, own_n);
	printf(",");
	print_pcts("remote_us", remote_us, remote_n);
	printf("}\n");
	cpg_finalize(h);
	return 0;
}
