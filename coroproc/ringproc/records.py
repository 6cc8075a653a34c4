"""Record formats on the rings around the ring process (the contract with net and engines).

rx ring   (net → ring):    rtype RT_FRAME, payload = one received datagram.
tx ring   (ring → net):    rtype RT_FRAME, payload = [u32 dest nodeid][Totem frame];
                            dest 0 = every other member (multicast), else one node.
submit    (engine → ring): rtype RT_SUBMIT, flags bit 0 = safe, bit 1 = sync traffic
                            (sent while the engine's service sync runs), payload = one
                            totempg message (group header + application bytes, Corosync's
                            layout);
                            rtype RT_TRANS_ACK, payload = TRANS_ACK: the engine saw its
                            service sync of that ring complete (Corosync's totempg_trans_ack).
delivery  (ring → engine): rtype RT_DELIVER, payload = DLV header + the totempg message;
                            rtype RT_CONFIG, payload = CFG header + u32 members;
                            rtype RT_RING_START when a (re)started ring process attaches.
All integers little-endian; headers are 8-byte multiples so payloads stay aligned.
"""
import struct

RT_FRAME = 1
RT_SUBMIT = 1
RT_DELIVER = 1
RT_CONFIG = 2
RT_RING_START = 3   # payload: i64 node incarnation µs, i64 ring process start µs; every
                    # earlier membership the engine saw is void (the ring process restarted)

RT_TRANS_ACK = 2

SUBMIT_SAFE = 1
SUBMIT_SYNC = 2

TX_HDR_BYTES = 4

# DLV header: sender u32, ring rep u32, ring seq u64, totem seq u32, rpos u16 (index of
# the message among those packed in its frame), level u8 (0 agreed, 1 safe), pad u8.
DLV_HDR = struct.Struct("<IIQIHBx")
DLV_HDR_BYTES = 24
# CFG header: kind u32 (0 transitional, 1 regular), ring rep u32, ring seq u64,
# member count u32, pad u32; then count × u32 nodeids (sorted).
CFG_HDR = struct.Struct("<IIQII")
CFG_HDR_BYTES = 24

# TRANS_ACK: ring rep u32, pad u32, ring seq u64.
TRANS_ACK = struct.Struct("<IIQ")
TRANS_ACK_BYTES = 16

assert TRANS_ACK.size == TRANS_ACK_BYTES and DLV_HDR.size == DLV_HDR_BYTES and CFG_HDR.size == CFG_HDR_BYTES
