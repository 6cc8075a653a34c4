/* Prints sizeof/offsetof of libqb's public IPC headers as the compiler lays them out,
 * one "name value" per line, for tests/ipc/test_ipc_wire.py to compare with wire.py. */
#include <qb/qbipc_common.h>
#include <stddef.h>
#include <stdio.h>

int main(void)
{
	printf("request_header.size %zu\n", sizeof(struct qb_ipc_request_header));
	printf("request_header.id %zu\n", offsetof(struct qb_ipc_request_header, id));
	printf("request_header.size_field %zu\n", offsetof(struct qb_ipc_request_header, size));
	printf("response_header.size %zu\n", sizeof(struct qb_ipc_response_header));
	printf("response_header.size_field %zu\n", offsetof(struct qb_ipc_response_header, size));
	printf("response_header.error %zu\n", offsetof(struct qb_ipc_response_header, error));
	printf("msg_authenticate %d\n", QB_IPC_MSG_AUTHENTICATE);
	printf("msg_disconnect %d\n", QB_IPC_MSG_DISCONNECT);
	printf("type_socket %d\n", QB_IPC_SOCKET);
	printf("type_shm %d\n", QB_IPC_SHM);
	return 0;
}
