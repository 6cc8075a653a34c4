"""Benchmark: µs per frame for LinkCodec.seal and .open (one process, no sockets), per suite
at 64 B, 1 KiB and 1400 B payloads, with the ratio to the clear suite (the codec's
non-crypto cost) and to a bare AES-GCM encrypt+decrypt of the same payload (the limit
the crypto library sets); then the jitted AES-GCM and HMAC-SHA256 the secure links'
jitted data path uses (netproc/jit/aead.py, mac.py: seal + open in one jitted loop, no
Python per frame).
Run: .venv/bin/python bench/bench_link_codec.py [frames]
"""
import os
import sys
import time

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numba import njit

from coroproc.netproc.jit.aead import GCM_TAG_BYTES, GcmContext, gcm_open, gcm_seal, set_iv
from coroproc.netproc.jit.mac import MacContext, mac_compute, mac_verify
from coroproc.netproc.secure import CryptoSuite, KeyRing, LinkCodec

SUITES = [("none", "none"), ("none", "sha1"), ("none", "sha256"), ("none", "sha512"),
          ("aes128", "sha256"), ("aes256", "sha256")]
SIZES_BYTES = (64, 1024, 1400)
ROUNDS = 5


def per_frame_us(fn, frames):
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn(frames)
        best = min(best, (time.perf_counter() - t0) / frames * 1e6)
    return best


def codec_pair(cipher, hash_):
    suite = CryptoSuite(cipher, hash_)
    ring = KeyRing(suite, os.urandom(256) if suite.enabled else None, "bench")
    return (LinkCodec(ring, 1, 0, 1, (1, 2)), LinkCodec(ring, 2, 0, 1, (1, 2)))


def bench_suite(cipher, hash_, size, frames):
    payload = os.urandom(size)
    tx, rx = codec_pair(cipher, hash_)
    sealed = []

    def seal(n):
        sealed.clear()
        s = tx.seal
        for _ in range(n):
            sealed.append(s(1, 2, payload))

    def open_(n):
        o = rx.open
        for frame in sealed[:n]:
            if o(frame) is None:
                raise SystemExit(f"bench frame refused: {rx.counters.as_dict()}")

    seal_us = per_frame_us(seal, frames)
    # open needs fresh seqs each round (the replay window refuses repeats)
    open_best = float("inf")
    for _ in range(ROUNDS):
        seal(frames)
        t0 = time.perf_counter()
        open_(frames)
        open_best = min(open_best, (time.perf_counter() - t0) / frames * 1e6)
    return seal_us, open_best


def bare_gcm_us(size, frames):
    aead, nonce, aad, payload = AESGCM(os.urandom(32)), bytes(12), bytes(32), os.urandom(size)

    def run(n):
        for _ in range(n):
            aead.decrypt(nonce, aead.encrypt(nonce, payload, aad), aad)
    return per_frame_us(run, frames)


@njit
def _jitted_rounds(sealer, opener, iv, aad, src, dst, back, outl, size, n):
    ok = 0
    for seq in range(1, n + 1):
        set_iv(iv, np.uint64(seq))
        gcm_seal(sealer, iv, aad.ctypes.data, 32, src.ctypes.data, size, dst.ctypes.data, outl)
        ok += gcm_open(opener, iv, aad.ctypes.data, 32, dst.ctypes.data, size,
                       back.ctypes.data, outl)
    return ok


def jitted_gcm_us(size, frames):
    key = os.urandom(32)
    sealer, opener = GcmContext(True), GcmContext(False)
    sealer.set_key(key)
    opener.set_key(key)
    iv, aad, outl = np.zeros(12, np.uint8), np.zeros(32, np.uint8), np.zeros(1, np.int32)
    src = np.frombuffer(os.urandom(size), np.uint8)
    dst, back = np.zeros(size + GCM_TAG_BYTES, np.uint8), np.zeros(size, np.uint8)
    args = (sealer.ptr, opener.ptr, iv, aad, src, dst, back, outl, size)
    try:
        assert _jitted_rounds(*args, 10) == 10          # compiled, and every frame opened
        return per_frame_us(lambda n: _jitted_rounds(*args, n), frames)
    finally:
        sealer.free()
        opener.free()


@njit
def _jitted_mac_rounds(sealer, opener, frame, scratch, outl, size, n):
    ok = 0
    for _ in range(n):
        mac_compute(sealer, frame.ctypes.data, size, frame.ctypes.data + size, outl)
        ok += mac_verify(opener, 32, frame, 0, size, scratch, outl)
    return ok


def jitted_hmac_us(size, frames):
    key = os.urandom(32)
    sealer, opener = MacContext("sha256"), MacContext("sha256")
    sealer.set_key(key)
    opener.set_key(key)
    frame = np.zeros(size + 32, np.uint8)
    frame[:size] = np.frombuffer(os.urandom(size), np.uint8)
    args = (sealer.ptr, opener.ptr, frame, np.zeros(64, np.uint8), np.zeros(1, np.int32),
            size)
    try:
        assert _jitted_mac_rounds(*args, 10) == 10
        return per_frame_us(lambda n: _jitted_mac_rounds(*args, n), frames)
    finally:
        sealer.free()
        opener.free()


def main():
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rows = {}
    print(f"{'suite':<16}{'bytes':>6}{'seal µs':>9}{'open µs':>9}{'total':>8}"
          f"{'÷clear':>8}{'÷bare GCM':>11}")
    bare = {size: bare_gcm_us(size, frames) for size in SIZES_BYTES}
    for cipher, hash_ in SUITES:
        for size in SIZES_BYTES:
            seal_us, open_us = bench_suite(cipher, hash_, size, frames)
            total = seal_us + open_us
            rows[(cipher, hash_, size)] = total
            clear = rows[("none", "none", size)]
            print(f"{cipher + '/' + hash_:<16}{size:>6}{seal_us:>9.2f}{open_us:>9.2f}"
                  f"{total:>8.2f}{total / clear:>8.2f}{total / bare[size]:>11.2f}")
    print("bare AES-256-GCM encrypt+decrypt µs: "
          + ", ".join(f"{s} B {bare[s]:.2f}" for s in SIZES_BYTES))
    print("jitted AES-256-GCM seal+open µs (netproc/jit/aead.py): "
          + ", ".join(f"{s} B {jitted_gcm_us(s, frames):.2f}" for s in SIZES_BYTES))
    print("jitted HMAC-SHA256 seal+open µs (netproc/jit/mac.py): "
          + ", ".join(f"{s} B {jitted_hmac_us(s, frames):.2f}" for s in SIZES_BYTES))


if __name__ == "__main__":
    main()
