"""Fragmentation of link frames for carriers whose path is smaller than a frame (wire.py:
the fragment header; reassembly.py: the bounded reassembly table). Used by the RDMA
carrier (UD messages ≤ 4 KiB) and by the UDP carrier above the discovered path MTU."""
