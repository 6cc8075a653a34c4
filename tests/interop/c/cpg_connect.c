/*
 * cpg_connect: open and close one libcpg connection; print the cs_error_t of
 * cpg_initialize as a number ("1" = CS_OK, "11" = CS_ERR_ACCESS) and exit 0.
 * Used to test who the daemon admits (run under other uids/gids).
 */
#include <corosync/cpg.h>
#include <stdio.h>

int main(void)
{
	cpg_handle_t h;
	cpg_callbacks_t cb = { 0 };
	cs_error_t e = cpg_initialize(&h, &cb);

	printf("%d\n", e);
	if (e == CS_OK)
		cpg_finalize(h);
	return 0;
}
