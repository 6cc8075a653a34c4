/* Prints sizeof/offsetof of CPG's exec (daemon-to-daemon) structs as gcc lays them out,
 * "name value" per line, for tests/cpg/test_cpg_exec_msgs.py to compare with
 * coroproc/engineprocs/cpg/exec_msgs.py. The exec structs are private to exec/cpg.c, so
 * their shapes are declared here field by field (types and aligned(8) attributes as in
 * Corosync 3.1.7); mar_cpg_name_t and the IPC headers come from the real headers. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <qb/qbipc_common.h>
#include <corosync/corotypes.h>
#include <corosync/corodefs.h>
#include <corosync/hdb.h>
#include <corosync/cpg.h>
#include <corosync/ipc_cpg.h>

#define A8 __attribute__((aligned(8)))
#define COUNT_MAX 384

typedef struct { uint32_t nodeid A8; void *conn A8; } A8 source_t;
struct procjoin { struct qb_ipc_request_header header A8; mar_cpg_name_t group_name A8;
	mar_uint32_t pid A8; mar_uint32_t reason A8; };
struct mcast { struct qb_ipc_request_header header A8; mar_cpg_name_t group_name A8;
	mar_uint32_t msglen A8; mar_uint32_t pid A8; source_t source A8;
	mar_uint8_t message[] A8; };
struct partial { struct qb_ipc_request_header header A8; mar_cpg_name_t group_name A8;
	mar_uint32_t msglen A8; mar_uint32_t fraglen A8; mar_uint32_t pid A8;
	mar_uint32_t type A8; source_t source A8; mar_uint8_t message[] A8; };
struct downlist_old { struct qb_ipc_request_header header A8; mar_uint32_t left_nodes A8;
	mar_uint32_t nodeids[COUNT_MAX] A8; };
struct downlist { struct qb_ipc_request_header header A8; mar_uint32_t old_members A8;
	mar_uint32_t left_nodes A8; mar_uint32_t nodeids[COUNT_MAX] A8; };
struct join_list_entry { uint32_t pid; mar_cpg_name_t group_name; };

#define P(name, value) printf("%s %zu\n", name, (size_t)(value))
int main(void)
{
	P("name.size", sizeof(mar_cpg_name_t));
	P("name.value", offsetof(mar_cpg_name_t, value));
	P("procjoin.size", sizeof(struct procjoin));
	P("procjoin.group_name", offsetof(struct procjoin, group_name));
	P("procjoin.pid", offsetof(struct procjoin, pid));
	P("procjoin.reason", offsetof(struct procjoin, reason));
	P("mcast.size", sizeof(struct mcast));
	P("mcast.msglen", offsetof(struct mcast, msglen));
	P("mcast.pid", offsetof(struct mcast, pid));
	P("mcast.source_nodeid", offsetof(struct mcast, source.nodeid));
	P("mcast.source_conn", offsetof(struct mcast, source.conn));
	P("mcast.message", offsetof(struct mcast, message));
	P("partial.size", sizeof(struct partial));
	P("partial.msglen", offsetof(struct partial, msglen));
	P("partial.fraglen", offsetof(struct partial, fraglen));
	P("partial.pid", offsetof(struct partial, pid));
	P("partial.type", offsetof(struct partial, type));
	P("partial.source_nodeid", offsetof(struct partial, source.nodeid));
	P("partial.source_conn", offsetof(struct partial, source.conn));
	P("partial.message", offsetof(struct partial, message));
	P("downlist_old.size", sizeof(struct downlist_old));
	P("downlist_old.left_nodes", offsetof(struct downlist_old, left_nodes));
	P("downlist_old.nodeids", offsetof(struct downlist_old, nodeids));
	P("downlist.size", sizeof(struct downlist));
	P("downlist.old_members", offsetof(struct downlist, old_members));
	P("downlist.left_nodes", offsetof(struct downlist, left_nodes));
	P("downlist.nodeids", offsetof(struct downlist, nodeids));
	P("joinlist.header", sizeof(struct qb_ipc_response_header));
	P("join_list_entry.size", sizeof(struct join_list_entry));
	P("join_list_entry.group_name", offsetof(struct join_list_entry, group_name));
	return 0;
}
