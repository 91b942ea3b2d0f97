"""msgpack-rpc frames and the streaming decoder (raftsim/wire/framing.py): frames
round-trip, a stream split anywhere reassembles, and no input — garbage, truncation, wrong
types, lying headers, bombs — raises anything but FrameError or holds more than the
limits allow."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.messages import (
    AppendEntries,
    Entry,
    EntryKind,
    InstallSnapshot,
    Message,
    RequestVote,
    TimeoutNow,
)
from raftsim.wire import (
    MAX_BYTES_LEN,
    MAX_CONTAINER_LEN,
    MAX_FRAME_BYTES,
    MAX_NESTING_DEPTH,
    Frame,
    FrameDecoder,
    FrameError,
    Notification,
    Request,
    Response,
    WireError,
    decode_frame,
    decode_message,
    decode_message_bytes,
    encode_frame,
    encode_message,
)
from tests.test_wire_codec import messages, msgpack_values

msgids = st.integers(0, 2**32 - 1)
methods = st.text(max_size=16)
params = st.lists(msgpack_values, max_size=6)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Request, msgids, methods, params),
    st.builds(Response, msgids, msgpack_values, msgpack_values),
    st.builds(Notification, methods, params),
)


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


SAMPLES: list[Frame] = [
    Request(1, "Operator.RaftRemovePeerByID", [{"ID": "s3"}]),
    Response(1, None, {"Index": 42, "Servers": [{"ID": "s1", "Voter": True}]}),
    Response(2, "not the leader", None),
    Notification("TimeoutNow", [3, "s1", "s2"]),
    decode_frame(
        encode_message(
            AppendEntries(
                2, "s1", "s2", 1, 1, (Entry(2, 2, EntryKind.CONFIGURATION, b"\x00cfg"),), 1
            )
        )
    ),
]


def collect(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame]:
    out: list[Frame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


# ---------------------------------------------------------------- round trips


@given(frames)
def test_every_frame_round_trips(frame: Frame) -> None:
    assert decode_frame(encode_frame(frame)) == frame


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (Request(7, "m", [1, "x", b"y"]), [0, 7, "m", [1, "x", b"y"]]),
        (Response(7, None, {"a": [True]}), [1, 7, None, {"a": [True]}]),
        (Response(2**32 - 1, "boom", None), [1, 2**32 - 1, "boom", None]),
        (Notification("TimeoutNow", [1, "a", "b"]), [2, "TimeoutNow", [1, "a", "b"]]),
    ],
    ids=repr,
)
def test_frames_are_the_msgpack_rpc_arrays(frame: Frame, wire: list[Any]) -> None:
    assert encode_frame(frame) == pack(wire)
    assert decode_frame(pack(wire)) == frame


def test_params_given_as_a_tuple_encode_as_an_array() -> None:
    data = encode_frame(Request(1, "m", (1, 2)))  # type: ignore[arg-type]
    assert decode_frame(data) == Request(1, "m", [1, 2])


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        (Request(-1, "m", []), "msgid must be an int in"),
        (Request(2**32, "m", []), "msgid must be an int in"),
        (Request(True, "m", []), "msgid must be an int in"),
        (Response(1.5, None, None), "msgid must be an int in"),  # type: ignore[arg-type]
        (Request(1, b"m", []), "method must be a str"),  # type: ignore[arg-type]
        (Notification(None, []), "method must be a str"),  # type: ignore[arg-type]
        (Notification("m", {"a": 1}), "params must be a list"),  # type: ignore[arg-type]
        (Request(1, "m", [{1, 2}]), "cannot encode Request"),
        (Request(1, "m", [object()]), "cannot encode Request"),
        (Response(1, None, 2**64), "cannot encode Response"),
        (Notification("m", ["\ud800"]), "cannot encode Notification"),
    ],
    ids=repr,
)
def test_frames_a_peer_would_reject_are_not_encoded(frame: Frame, complaint: str) -> None:
    with pytest.raises(FrameError, match=complaint):
        encode_frame(frame)


def test_encoding_a_non_frame_raises_frame_error() -> None:
    with pytest.raises(FrameError, match="not a frame: TimeoutNow"):
        encode_frame(TimeoutNow(1, "a", "b"))  # type: ignore[arg-type]


# ---------------------------------------------------------------- decode_frame rejects


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "truncated"),
        (b"\xc1", "not msgpack"),
        (pack(5), "a frame must be an array, got int 5"),
        (pack({"a": 1}), "a frame must be an array, got map of 1 entries"),
        (pack("x" * 100), "a frame must be an array, got str 'xxxx"),
        (pack([]), "a frame must be a non-empty array"),
        (pack([3, "m", []]), "must start with type 0, 1 or 2, got int 3"),
        (pack([-1, "m", []]), "must start with type 0, 1 or 2"),
        (pack(["2", "m", []]), "must start with type 0, 1 or 2, got str '2'"),
        (pack([True, 1, None, None]), "must start with type 0, 1 or 2, got bool True"),
        (pack([2.0, "m", []]), "must start with type 0, 1 or 2, got float"),
        (pack([2, "m", [], None]), r"a notification frame is \[2, method, params\], got an arr"),
        (pack([0, 1, "m"]), r"a request frame is \[0, msgid, method, params\]"),
        (pack([1, 1, None]), r"a response frame is \[1, msgid, error, result\]"),
        (pack([2, 5, []]), "a notification method must be a str, got int 5"),
        (pack([2, b"AppendEntries", []]), "a notification method must be a str, got bin"),
        (pack([2, "m", {"a": 1}]), "notification params must be an array, got map"),
        (pack([2, "m", None]), "notification params must be an array, got nil"),
        (pack([0, 1, 5, []]), "a request method must be a str"),
        (pack([0, 1, "m", "p"]), "request params must be an array, got str"),
        (pack([0, -1, "m", []]), r"msgid must be an int in \[0, 2\*\*32\), got int -1"),
        (pack([0, 2**32, "m", []]), "msgid must be an int in"),
        (pack([1, True, None, None]), "msgid must be an int in .* got bool True"),
        (pack([1, "1", None, None]), "msgid must be an int in"),
        (pack([0, None, "m", []]), "msgid must be an int in .* got nil"),
        (pack([2, "m", []]) + b"\xc0", "left over"),
        (b"\x93\x02\xa1m\x91\xa2\xff\xfe", "not valid UTF-8"),
        (b"\x93\x02\xa1m\x91\x81\x01\x02", "int is not allowed for map key"),
        (b"\x93\x02\xa1m\x91\x81\x90\x02", "list is not allowed for map key"),
        (b"\x93\x02\xa1m\x91\xd4\x01\x00", "ext types are not allowed"),
        (b"\x93\x02\xa1m\x91\xc7\x00\x05", "ext types are not allowed"),
        (b"\x93\x02\xa1m\x91\xd6\xff\x00\x00\x00\x00", "ext types are not allowed"),  # timestamp
        (b"\x93\x02\xa1m\x91\xc7\x0c\xff" + bytes(12), "ext types are not allowed"),
        (b"\x93\x02\xa1m\x91\xc6\xff\xff\xff\xff", "truncated"),  # bin32 of 4 GiB
        (b"\x93\x02\xa1m\x91\xdb\xff\xff\xff\xff", "truncated"),  # str32 of 4 GiB
        (b"\x93\x02\xa1m\xdd\x80\x00\x00\x00", "truncated"),  # array of 2**31
        (b"\x93\x02\xa1m\xdf\x80\x00\x00\x00", "truncated"),  # map of 2**31
        (b"\x91" * 100_000, "nested deeper than msgpack's limit"),
        (b"\x81\xa0" * 50_000, "nested deeper than msgpack's limit"),
    ],
    ids=lambda value: value[:24] if isinstance(value, bytes) else value,
)
def test_decode_frame_rejects_with_a_reason(data: bytes, complaint: str) -> None:
    with pytest.raises(FrameError, match=complaint):
        decode_frame(data)
    with pytest.raises(WireError):
        decode_message_bytes(data)


def test_nesting_in_request_and_response_payloads_is_bounded() -> None:
    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):  # depth arrays around a leaf
            value = [value]
        return value

    assert decode_frame(pack([0, 1, "m", nested(MAX_NESTING_DEPTH)])) is not None
    assert decode_frame(pack([1, 1, None, nested(MAX_NESTING_DEPTH)])) is not None
    deep = nested(MAX_NESTING_DEPTH + 1)
    with pytest.raises(FrameError, match="request params nest deeper than 64"):
        decode_frame(pack([0, 1, "m", deep]))
    with pytest.raises(FrameError, match="nests deeper than 64"):
        decode_frame(pack([1, 1, deep, None]))
    with pytest.raises(FrameError, match="nests deeper than 64"):
        decode_frame(pack([1, 1, None, {"a": deep}]))
    # 1000 deep: within msgpack's limit, beyond Python's recursion limit for repr.
    with pytest.raises(FrameError, match="nest deeper"):
        decode_frame(pack([0, 1, "m", []])[:-1] + b"\x91" * 1000 + b"\xc0")


def test_decode_frame_applies_the_module_limits_to_large_frames() -> None:
    with pytest.raises(FrameError, match="over the limit"):
        decode_frame(bytes(MAX_FRAME_BYTES + 1))
    too_long = [0] * (MAX_CONTAINER_LEN + 1)
    with pytest.raises(FrameError, match="exceeds max_array_len"):
        decode_frame(pack([0, 1, "m", too_long]))
    assert decode_frame(pack([0, 1, "m", too_long[:-1]])) == Request(1, "m", too_long[:-1])


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_decode_frame_on_garbage_raises_frame_error_only(data: bytes) -> None:
    try:
        decode_frame(data)
    except FrameError:
        pass


@given(msgpack_values)
def test_decode_frame_on_any_msgpack_value_raises_frame_error_only(value: object) -> None:
    try:
        frame = decode_frame(pack(value))
    except FrameError:
        return
    assert encode_frame(frame) == pack(value)


# ---------------------------------------------------------------- the stream decoder


def test_a_stream_split_at_every_byte_boundary_reassembles() -> None:
    stream = b"".join(encode_frame(frame) for frame in SAMPLES)
    for cut in range(len(stream) + 1):
        assert collect(FrameDecoder(), [stream[:cut], stream[cut:]]) == SAMPLES, cut
    one_byte_at_a_time = [stream[i : i + 1] for i in range(len(stream))]
    assert collect(FrameDecoder(), one_byte_at_a_time) == SAMPLES


@given(st.lists(frames | messages.map(lambda m: decode_frame(encode_message(m))), max_size=8))
def test_a_stream_split_at_random_boundaries_reassembles(sent: list[Frame]) -> None:
    stream = b"".join(encode_frame(frame) for frame in sent)
    rng = random.Random(len(stream))
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = FrameDecoder()
    assert collect(decoder, chunks) == sent
    assert decoder.buffered == 0


@given(st.data())
def test_random_boundaries_chosen_by_hypothesis(data: st.DataObject) -> None:
    stream = b"".join(encode_frame(frame) for frame in SAMPLES)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert collect(FrameDecoder(), chunks) == SAMPLES


def test_raft_messages_come_out_of_the_stream_decoder() -> None:
    sent: list[Message] = [
        RequestVote(2, "s1", "s2", 5, 1, pre_vote=True),
        TimeoutNow(3, "s1", "s3"),
    ]
    frames_out = FrameDecoder().feed(b"".join(encode_message(m) for m in sent))
    assert [decode_message(frame) for frame in frames_out] == sent  # type: ignore[arg-type]


def test_a_truncated_frame_yields_nothing_until_the_rest_arrives() -> None:
    data = encode_frame(SAMPLES[1])
    for cut in range(len(data)):
        decoder = FrameDecoder()
        assert decoder.feed(data[:cut]) == []
        assert decoder.buffered == cut
        assert decoder.feed(data[cut:]) == [SAMPLES[1]]
        assert decoder.buffered == 0


def test_many_small_frames_in_one_feed_are_not_limited_by_the_buffer() -> None:
    frame = Notification("TimeoutNow", [1, "a", "b"])
    stream = encode_frame(frame) * 20_000  # ~400 KB, far over the 1000-byte limit
    assert FrameDecoder(max_buffer_bytes=1000).feed(stream) == [frame] * 20_000


def test_the_longest_bin_fits_in_one_frame_with_the_defaults() -> None:
    configuration = encode_indexed(1, Configuration((ServerInfo("s1", "h:1"),)))
    chunk = bytes(MAX_BYTES_LEN - len(configuration) - 64)
    # a chunk of a larger snapshot (a whole snapshot in one message must be valid state)
    snapshot = InstallSnapshot(9, "s1", "s2", 10**6, 8, configuration, chunk, done=False)
    data = encode_message(snapshot)
    assert len(data) <= MAX_FRAME_BYTES
    assert decode_message_bytes(data) == snapshot
    decoder = FrameDecoder()
    mib = 1 << 20
    got = collect(decoder, [data[i : i + mib] for i in range(0, len(data), mib)])
    assert [decode_message(frame) for frame in got] == [snapshot]  # type: ignore[arg-type]
    assert [decode_message(f) for f in FrameDecoder().feed(data)] == [snapshot]  # type: ignore[arg-type]


# ---------------------------------------------------------------- the stream decoder rejects


def assert_poisoned(decoder: FrameDecoder) -> None:
    assert decoder.error is not None
    with pytest.raises(FrameError, match="already broken"):
        decoder.feed(encode_frame(SAMPLES[0]))


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (pack(5), "must be an array"),
        (pack([3, "m", []]), "must start with type"),
        (pack([2, 5, []]), "method must be a str"),
        (pack([2, "m", {"a": 1}]), "params must be an array"),
        (b"\xc1", "not msgpack"),
        (b"\x93\x02\xa1m\x91\xd4\x01\x00", "ext types are not allowed"),
        (b"\x93\x02\xa1m\x91\xd6\xff\x00\x00\x00\x00", "ext types are not allowed"),
        (b"\x93\x02\xa1m\x91\xc9\xff\xff\xff\xff\x05", "ext types are not allowed"),  # 4 GiB
        (b"\x93\x02\xa1m\xdd\x80\x00\x00\x00", "exceeds max_array_len"),  # array of 2**31
        (b"\x93\x02\xa1m\xdf\x80\x00\x00\x00", "exceeds max_map_len"),  # map of 2**31
        (b"\x91" * 100_000, "nested deeper"),
        (b"\x93\x02\xa1m\x91\xa2\xff\xfe", "not valid UTF-8"),
    ],
    ids=lambda value: value[:24] if isinstance(value, bytes) else value,
)
def test_the_stream_decoder_rejects_and_is_poisoned(data: bytes, complaint: str) -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match=complaint):
        decoder.feed(encode_frame(SAMPLES[0]) + data)
    assert_poisoned(decoder)


@pytest.mark.parametrize(
    "header",
    [b"\xc6\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff"],
    ids=["bin32 of 4 GiB", "str32 of 4 GiB"],
)
def test_a_lying_length_header_is_caught_by_the_buffer_limit(header: bytes) -> None:
    """msgpack checks a str/bin/ext length once its body is in: until then the buffer
    limit bounds what the lie can make us hold."""
    decoder = FrameDecoder(max_buffer_bytes=1024)
    assert decoder.feed(b"\x93\x02\xa1m\x91" + header) == []
    with pytest.raises(FrameError, match="over the limit of 1024"):
        for _ in range(100):
            assert decoder.feed(bytes(100)) == []
            assert decoder.buffered <= 1024
    assert_poisoned(decoder)


def test_a_str_or_bin_over_max_bytes_len_is_rejected_when_it_arrives() -> None:
    for value in (b"x" * 101, "x" * 101):
        decoder = FrameDecoder(max_bytes_len=100, max_buffer_bytes=10_000)
        data = pack([2, "m", [value]])
        assert decoder.feed(data[:-1]) == []
        with pytest.raises(FrameError, match="exceeds max_(bin|str)_len"):
            decoder.feed(data[-1:])
        ok = pack([2, "m", [value[:100]]])
        assert FrameDecoder(max_bytes_len=100).feed(ok) == [decode_frame(ok)]


def test_an_array_or_map_over_max_container_len_is_rejected_at_its_header() -> None:
    decoder = FrameDecoder(max_container_len=100)
    with pytest.raises(FrameError, match="exceeds max_array_len"):
        decoder.feed(pack([2, "m", list(range(101))])[:8])
    decoder = FrameDecoder(max_container_len=100)
    with pytest.raises(FrameError, match="exceeds max_map_len"):
        decoder.feed(pack([2, "m", [{str(i): i for i in range(101)}]]))
    ok = pack([2, "m", list(range(98))])
    assert FrameDecoder(max_container_len=100).feed(ok) == [decode_frame(ok)]


def test_max_buffer_bytes_is_the_largest_frame() -> None:
    exact = pack([2, "m", [b"x" * 980]])
    limit = len(exact)
    assert FrameDecoder(max_buffer_bytes=limit).feed(exact) == [decode_frame(exact)]
    assert collect(FrameDecoder(max_buffer_bytes=limit), [exact[:500], exact[500:]]) == [
        decode_frame(exact)
    ]
    too_big = pack([2, "m", [b"x" * 981]])
    decoder = FrameDecoder(max_buffer_bytes=limit)
    with pytest.raises(FrameError, match=f"a frame of {limit + 1} bytes is over the limit"):
        decoder.feed(too_big)
    decoder = FrameDecoder(max_buffer_bytes=limit)
    with pytest.raises(FrameError, match=f"a frame of {limit + 1} bytes is over the limit"):
        collect(decoder, [too_big[:-1], too_big[-1:]])
    decoder = FrameDecoder(max_buffer_bytes=limit)
    with pytest.raises(FrameError, match="unfinished frame already holds 1500 bytes"):
        decoder.feed(pack([2, "m", [b"x" * 2000]])[:1500])


def test_a_buffer_growing_past_the_limit_is_rejected() -> None:
    decoder = FrameDecoder(max_buffer_bytes=4096)
    decoder.feed(b"\x93\x02\xa1m\x91\xc5\xff\xff")  # bin16 of 65535 bytes, coming
    fed = 8
    with pytest.raises(FrameError, match="unfinished frame"):
        while True:
            decoder.feed(b"\x00" * 512)
            fed += 512
            assert fed <= 4096
    assert fed + 512 > 4096


def test_feeding_something_that_is_not_bytes_raises_frame_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed("not bytes")  # type: ignore[arg-type]
    assert_poisoned(decoder)


@pytest.mark.parametrize("limit", ["max_buffer_bytes", "max_container_len", "max_bytes_len"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_limits_must_be_positive_ints(limit: str, value: object) -> None:
    with pytest.raises(ValueError, match=limit):
        FrameDecoder(**{limit: value})  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.binary(max_size=200), st.data())
def test_garbage_in_random_chunks_raises_frame_error_only(data: bytes, draw: st.DataObject) -> None:
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=5)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    decoder = FrameDecoder(max_buffer_bytes=128, max_container_len=16, max_bytes_len=64)
    try:
        collect(decoder, chunks)
    except FrameError:
        assert_poisoned(decoder)


@given(st.lists(frames, min_size=1, max_size=4), st.data())
def test_corrupted_streams_raise_frame_error_only(sent: list[Frame], draw: st.DataObject) -> None:
    stream = bytearray(b"".join(encode_frame(frame) for frame in sent))
    for _ in range(draw.draw(st.integers(1, 4))):
        stream[draw.draw(st.integers(0, len(stream) - 1))] = draw.draw(st.integers(0, 255))
    decoder = FrameDecoder()
    try:
        got = decoder.feed(bytes(stream))
    except FrameError:
        return
    for frame in got:  # whatever came through is a well-formed frame (bytes: NaN != NaN)
        assert encode_frame(decode_frame(encode_frame(frame))) == encode_frame(frame)
