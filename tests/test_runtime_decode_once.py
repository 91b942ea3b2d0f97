"""A group-commit leader decodes each client command once: ``submit`` validates it with
the full check issue 11 added (``checked_command``, the wire's own rules) and keeps what
it decoded; applying the leader's own entry uses that instead of decoding the entry's
bytes again. The result is the same as decoding the entry."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from raftsim.core.ready import Role
from raftsim.runtime import kv as kv_module
from raftsim.runtime.kv import (
    CommandError,
    KVStore,
    checked_command,
    encode_batch,
    encode_delete,
    encode_put,
)
from raftsim.sim.loop import VirtualTimeLoop
from raftsim.wire import payload
from tests.lone_server import lone_server

COMMANDS = [encode_put("a", b"1"), encode_put("b", b"2", 0), encode_put("a", b"3", 99),
            encode_delete("b"), encode_put("c", b"4")]



def test_applying_decoded_commands_gives_what_decoding_the_batch_gives() -> None:
    from_batch, from_ops = KVStore(), KVStore()
    results = from_batch.apply_batch(7, encode_batch(COMMANDS))
    assert from_ops.apply_ops(7, [checked_command(c) for c in COMMANDS]) == results
    assert from_ops.items == from_batch.items and from_ops.applied_index == 7


@pytest.mark.parametrize("command", [b"\xc1", msgpack.packb(["put", "k", "not bytes", None]),
                                     msgpack.packb(["batch", []]), msgpack.packb(["drop"]),
                                     msgpack.packb(["put", "k", b"v", -1])])
def test_the_decoding_check_refuses_what_the_wire_refuses(command: bytes) -> None:
    assert payload.command_problem(command, batch=False) is not None
    with pytest.raises(CommandError, match="not a key-value command: "):
        checked_command(command)


def test_a_leader_decodes_each_submitted_command_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = VirtualTimeLoop()
    server = lone_server(loop, name="solo", address="x:1")
    try:
        loop.run_for(1.0)
        assert server.role is Role.LEADER
        decoded: list[bytes] = []
        real = msgpack.unpackb

        def counting(data: bytes, **options: Any) -> Any:
            decoded.append(bytes(data))
            return real(data, **options)

        monkeypatch.setattr(payload, "_unpackb", counting)
        monkeypatch.setattr(kv_module.msgpack, "unpackb", counting)
        outcomes: list[Any] = []
        for n in range(100):
            server.submit(encode_put(f"k{n}", b"v"), outcomes.append)
        loop.run_for(0.1)
        assert outcomes == [True] * 100
        assert len(decoded) == 100  # once each, at submit; none when applying
        assert server.kv.get("k99") is not None
    finally:
        server.crash()
        loop.close()
