"""Key derivation, key ids, rotation in three phases, key files and session ids."""
import hashlib
import hmac
import os
import stat
import struct
import warnings

import pytest
from secure_helpers import authkey, codec, counted, hkdf_sha256, ring

from coroproc.netproc.secure import (AuthkeyError, AuthkeyPermissionWarning, CryptoSuite,
                                     KeyRing, LinkKey, inline_authkey, load_authkey,
                                     new_session_id)


@pytest.mark.parametrize("cipher,hash_,length", [("aes128", "sha1", 16),
                                                 ("aes256", "md5", 32),
                                                 ("none", "sha384", 48)])
def test_link_key_follows_the_documented_derivation(cipher, hash_, length):
    key = authkey()
    link = LinkKey(key, CryptoSuite(cipher, hash_), "alpha")
    expected = hkdf_sha256(key, b"coroproc-link-v1",
                           b"alpha/" + cipher.encode() + b"/" + hash_.encode(), length)
    assert link.key_id == 1 + hashlib.sha256(expected).digest()[0] % 255
    # The session key as documented: a MAC-only suite's session key is the HMAC key.
    if cipher == "none":
        session = hkdf_sha256(expected, None, b"session" + struct.pack("<IBQ", 7, 3, 99),
                              length)
        mac = link.session(7, 3, 99).copy()
        mac.update(b"message")
        assert mac.digest() == hmac.new(session, b"message", hash_).digest()


def test_key_ids_are_stable_and_in_range():
    ids = {LinkKey(authkey(seed), CryptoSuite("aes256", "sha256"), "testcluster").key_id
           for seed in range(300)}
    assert ids <= set(range(1, 256)) and len(ids) > 100
    assert ring().tx.key_id == ring().tx.key_id


def test_rotation_in_three_phases():
    old_ring, new_key = ring(), authkey(seed=42)
    rx_ring = ring()
    tx, rx = codec(old_ring, 1), codec(rx_ring, 2)
    old_id = old_ring.tx.key_id
    old_frame = tx.seal(1, 2, b"old key")

    new_id = rx_ring.add(new_key).key_id                 # phase 1 on the receiver
    old_ring.add(new_key)                                # ... and on the sender
    assert new_id != old_id
    assert rx.open(old_frame) is not None                # old key still accepted
    old_ring.use(new_id)                                 # phase 2
    new_frame = tx.seal(1, 2, b"new key")
    assert new_frame[5] == new_id
    assert bytes(rx.open(new_frame)[2]) == b"new key"
    straggler = codec(ring(), 3)                         # a node still sealing old
    assert rx.open(straggler.seal(1, 2, b"late old")) is not None

    rx_ring.drop_except(new_id)                          # phase 3
    assert rx.open(straggler.seal(1, 2, b"dropped")) is None
    assert rx.open(tx.seal(1, 2, b"still fine")) is not None
    assert counted(rx) == {"rx_ok": 4, "rx_unknown_key": 1}


def _colliding_authkeys():
    first = LinkKey(authkey(0), CryptoSuite("aes256", "sha256"), "testcluster").key_id
    for seed in range(1, 10_000):
        if LinkKey(authkey(seed), CryptoSuite("aes256", "sha256"),
                   "testcluster").key_id == first:
            return authkey(0), authkey(seed)
    raise AssertionError("no key_id collision in 10000 keys")


def test_equal_key_ids_are_both_tried_then_dropped_one_fails_auth():
    key_a, key_b = _colliding_authkeys()
    rx_ring = ring(key=key_a)
    rx = codec(rx_ring, 2)
    assert rx_ring.add(key_b).key_id == rx_ring.tx.key_id
    from_a = codec(ring(key=key_a), 1, session=10)
    from_b = codec(ring(key=key_b), 3, session=10)
    assert rx.open(from_a.seal(1, 2, b"a")) is not None
    assert rx.open(from_b.seal(1, 2, b"b")) is not None
    rx_ring.drop_except(rx_ring.tx.key_id)               # the id names the newest: key_b
    assert rx.open(from_b.seal(1, 2, b"b")) is not None
    assert rx.open(from_a.seal(1, 2, b"a")) is None
    assert counted(rx) == {"rx_ok": 3, "rx_auth_failed": 1}


def test_keyring_errors():
    r = ring()
    with pytest.raises(ValueError, match="no key with key_id"):
        r.use(0)
    with pytest.raises(ValueError, match="crypto is off"):
        ring("none", "none").add(authkey())
    with pytest.raises(ValueError, match="no authkey"):
        KeyRing(CryptoSuite("aes128", "sha1"), None, "c")
    assert ring("none", "none").tx is None


def _write_key(tmp_path, size, mode=0o400):
    path = tmp_path / f"authkey-{size}"
    path.write_bytes(os.urandom(size))
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize("size", [128, 256, 4096])
def test_valid_key_file_loads_without_warning(tmp_path, size):
    path = _write_key(tmp_path, size)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_authkey(path)) == size


@pytest.mark.parametrize("size", [0, 127, 4097, 100_000])
def test_key_file_of_wrong_length(tmp_path, size):
    path = _write_key(tmp_path, size)
    with pytest.raises(AuthkeyError, match=f"{path} is {size} bytes.*128..4096"):
        load_authkey(path)


def test_missing_key_file_and_directory(tmp_path):
    with pytest.raises(AuthkeyError, match=f"{tmp_path}/nope does not exist"):
        load_authkey(str(tmp_path / "nope"))
    with pytest.raises(AuthkeyError, match="not a regular file"):
        load_authkey(str(tmp_path))


def test_group_readable_key_warns(tmp_path):
    path = _write_key(tmp_path, 256, mode=0o440)
    with pytest.warns(AuthkeyPermissionWarning, match="mode 0440.*chmod 0400"):
        load_authkey(path)
    messages = []
    assert len(load_authkey(path, warn=messages.append)) == 256
    assert len(messages) == 1 and path in messages[0]


def test_unreadable_key_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads a mode-000 file: cannot make it unreadable here")
    path = _write_key(tmp_path, 256, mode=0)
    with pytest.raises(AuthkeyError, match="cannot be opened: Permission denied"):
        load_authkey(path)


def test_inline_key():
    assert inline_authkey("k" * 128) == b"k" * 128
    assert len(inline_authkey("é" * 64)) == 128               # UTF-8 bytes count
    with pytest.raises(AuthkeyError, match="totem.key is 127 bytes"):
        inline_authkey("k" * 127)


def test_session_ids_increase_past_a_persisted_future_value(tmp_path):
    path = str(tmp_path / "linksession_0")
    first = new_session_id(path)
    assert int(open(path).read()) == first
    future = first + 10**18                              # as if the clock stepped back
    with open(path, "w") as f:
        f.write(f"{future}\n")
    assert new_session_id(path) == future + 1
    assert int(open(path).read()) == future + 1
    assert new_session_id() > 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["linksession_0"]     # no temporary file left


def test_corrupt_session_file_is_an_error(tmp_path):
    path = tmp_path / "linksession_1"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"{path} holds b'garbage'"):
        new_session_id(str(path))
