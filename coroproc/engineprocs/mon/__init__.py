"""The MON service (id 6): Corosync's exec/mon.c — publishes memory and load figures under
resources.system.* and marks them failed past a configured maximum. See docs/watchdog.md."""
