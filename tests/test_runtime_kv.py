"""The KV state machine's snapshots: made and read one key at a time (so a live server
can do it in a worker thread without holding the GIL for the whole state), with the
same bytes as packing the whole state in one call."""

from __future__ import annotations

import msgpack
import pytest

from raftsim.runtime.kv import KVStore, decode_snapshot, encode_put, encode_snapshot


def store_with(count: int) -> KVStore:
    kv = KVStore()
    for n in range(count):
        # keys inserted out of order: the snapshot sorts them
        kv.apply(n + 1, encode_put(f"key-{(n * 7919) % count:06d}", b"v%d" % n))
    kv.apply(count + 1, encode_put("key-000001", b"rewritten"))
    return kv


def whole(kv: KVStore) -> bytes:
    """The snapshot format, packed in one call as before."""
    return msgpack.packb(
        [kv.applied_index, [[k, v.value, v.modify_index, v.create_index]
                            for k, v in sorted(kv.items.items())]], use_bin_type=True)


@pytest.mark.parametrize("count", [0, 1, 100, 40_000])  # 40,000 keys: sorted in runs
def test_a_snapshot_packed_key_by_key_is_the_whole_state_packed_at_once(count: int) -> None:
    kv = store_with(count)
    data = encode_snapshot(kv.applied_index, dict(kv.items))
    assert data == whole(kv) == kv.snapshot()


@pytest.mark.parametrize("count", [0, 100, 40_000])
def test_a_snapshot_read_key_by_key_restores_the_same_state(count: int) -> None:
    kv = store_with(count)
    applied, items = decode_snapshot(kv.snapshot())
    assert (applied, items) == (kv.applied_index, kv.items)
    restored = KVStore()
    restored.restore(kv.snapshot())
    assert restored.digest() == kv.digest()
    assert restored.get("key-000001") == kv.get("key-000001")


def test_an_empty_snapshot_is_an_empty_store() -> None:
    assert decode_snapshot(b"") == (0, {})


@pytest.mark.parametrize(
    "data", [msgpack.packb([1]), msgpack.packb(["x", []]), msgpack.packb([1, [[1, 2]]]),
             b"\xc1", msgpack.packb([1, [["k", b"v", 1, 1]]])[:-2]])
def test_bytes_that_are_no_kv_snapshot_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a KV snapshot"):
        decode_snapshot(data)


#: commands of every kind, and some that are not commands: a follower's ``apply`` and a
#: leader's ``apply_op`` (one entry per command) must agree with the batch path on each
COMMANDS = [
    ["put", "a", b"1", None], ["put", "a", b"2", None], ["put", "b", b"3", 0],
    ["put", "b", b"4", 0], ["put", "a", b"5", 2], ["put", "a", b"6", 99],
    ["delete", "b"], ["delete", "missing"], ["put", "a", "not bytes", None],
    ["put", 7, b"v", None], ["get", "a"], [], ["put", "a"],
]


def test_one_command_applies_as_it_does_in_a_batch_of_one() -> None:
    """``apply`` (a follower's path, one entry), ``apply_op`` (a leader's, a decoded
    command) and ``apply_ops`` (a batch) leave the same state and give the same results,
    command by command, including the ones that do not take effect."""
    single, decoded, batched = KVStore(), KVStore(), KVStore()
    for index, op in enumerate(COMMANDS, start=1):
        data = msgpack.packb(op, use_bin_type=True)
        expected = batched.apply_ops(index, [op])[0]
        assert single.apply(index, data) is expected, op
        assert decoded.apply_op(index, op) is expected, op
    assert single.items == decoded.items == batched.items
    assert single.applied_index == decoded.applied_index == batched.applied_index == 13
    assert single.apply(14, b"\xc1") is False and single.applied_index == 14
