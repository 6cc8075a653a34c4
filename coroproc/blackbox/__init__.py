"""The flight recorder (`logging.blackbox`) and its dump in libqb's blackbox format.

Corosync keeps its last log lines, at every priority, in a libqb blackbox ring and
writes them to `<state_dir>/fdata-<time>-<pid>` (symlink `fdata`) when
`runtime.blackbox.dump_flight_data` changes in cmap — which is what `corosync-blackbox`
does before it runs `qb-blackbox <state_dir>/fdata`. Here every process of a node keeps
its own recorder (recorder.py), a child's in a ring of shared memory the supervisor reads
(logring.py); on a dump, or when a child dies unasked, the supervisor writes them as one
file, in time order, that libqb's reader prints (qbfile.py).
"""
