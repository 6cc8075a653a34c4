"""The WD service (id 7): Corosync's exec/wd.c — a watchdog device kept kicked while every
monitored resource (resources.process.* from SAM, resources.system.* from MON) is
healthy. See docs/watchdog.md."""
