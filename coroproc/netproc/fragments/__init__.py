"""Fragmentation of link frames for carriers whose path is smaller than a frame (wire.py:
the fragment header, used by both carriers; reassembly.py: the RDMA carrier's bounded
reassembly table, UD messages ≤ 4 KiB; table.py: the UDP carrier's fragment state above
the discovered path MTU, whose kernels are jitted in ../jit/fragments.py)."""
