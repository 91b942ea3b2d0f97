"""msgpack-rpc frames, and a streaming decoder with hard limits.

Every byte a server receives passes through here first, and in a live cluster it comes
from a TCP port anything can connect to. So decoding is total: any input either yields
frames or raises :class:`FrameError` (a :class:`WireError`, a ``ValueError``), never any
other exception, and never makes us hold more memory than the limits below allow.

The three frame kinds are the msgpack-rpc spec's:

- ``[0, msgid, method, params]`` — :class:`Request`, answered by a Response with its msgid;
- ``[1, msgid, error, result]`` — :class:`Response`;
- ``[2, method, params]`` — :class:`Notification`, one-way. Raft messages travel as
  notifications (see ``codec.py``): a Raft response is a message of its own.

msgpack-rpc has no length prefix: a frame ends where its msgpack value ends, so a byte
stream is cut into frames by parsing it (:class:`FrameDecoder`).

Limits (h11's rule: a fixed bound on what a peer can make us buffer). A frame is at most
:data:`MAX_FRAME_BYTES`; one str or bin at most :data:`MAX_BYTES_LEN`; one array or map at
most :data:`MAX_CONTAINER_LEN` elements; no msgpack ext types at all (timestamps
included). msgpack checks an array, map or ext header against its limit as soon as it
reads it, but a str or bin header only once its body has arrived: until then a lying
length (a bin32 claiming 4 GiB) is bounded by the buffer limit instead.

The Python objects a frame decodes to are bounded by :data:`MAX_FRAME_ELEMENTS`: every
value inside an array or map counts, and so does each array or map. Without it a frame
made only of empty arrays cost about 70 bytes of memory per input byte and blocked the
event loop while it was built (measured: 4 MiB in, 280 MiB resident, 1.1 s; 4.3 s as a
request, whose nesting is then walked). A server's own frames hold a few hundred elements
(an AppendEntries is about five per entry; payloads are bin). msgpack still preallocates
list space from nested array headers before their elements arrive (lazily zeroed, up to
``1024 * 8 * max_container_len`` bytes, since msgpack nests 1024 deep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgpack

#: Longest frame. Raft traffic is bounded far below it by the core's settings: an
#: AppendEntries carries at most ``max_bytes_per_message`` (1 MiB) of entries unless one
#: entry alone is larger (a KV value is at most 512 KiB), and a snapshot travels in
#: InstallSnapshot chunks of ``snapshot_chunk_bytes`` (256 KiB), however large it is.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
#: Longest str or bin: the frame limit less room for everything else in the frame.
MAX_BYTES_LEN: Final = MAX_FRAME_BYTES - 64 * 1024
#: Most elements in one array or map (an AppendEntries batch is one array of entries).
MAX_CONTAINER_LEN: Final = 1 << 16
#: Most elements in one frame: the values in all its arrays and maps, plus the arrays and
#: maps themselves (see the module docstring). Far above what a server sends (an
#: AppendEntries of 64 entries holds ~330), far below what costs a second to build.
MAX_FRAME_ELEMENTS: Final = 1 << 17
#: Deepest nesting accepted in a Request's params or a Response's error/result, so that
#: handlers can repr or JSON-encode what they are given without a RecursionError.
#: (Notification params are checked exactly by ``codec.decode_message`` instead.)
MAX_NESTING_DEPTH: Final = 64
#: msgpack-rpc's msgid is a 32-bit unsigned integer.
MAX_MSGID: Final = 2**32 - 1

REQUEST: Final = 0
RESPONSE: Final = 1
NOTIFICATION: Final = 2

#: feed() hands msgpack at most this much at a time, draining frames in between, so the
#: unpacker's buffer never holds more than one partial frame plus one chunk.
_FEED_CHUNK: Final = 1 << 16


class WireError(ValueError):
    """Bytes or values that cannot cross the wire: the base of every error raised here."""


class FrameError(WireError):
    """Not a valid msgpack-rpc frame: not msgpack, the wrong shape, or over a limit."""


@dataclass(frozen=True, slots=True)
class Request:
    """``[0, msgid, method, params]``: a call that the peer answers with a Response."""

    msgid: int
    method: str
    params: list[Any]


@dataclass(frozen=True, slots=True)
class Response:
    """``[1, msgid, error, result]``: ``error`` is None on success."""

    msgid: int
    error: Any
    result: Any


@dataclass(frozen=True, slots=True)
class Notification:
    """``[2, method, params]``: one-way; every Raft message travels as one."""

    method: str
    params: list[Any]


Frame = Request | Response | Notification

_new = object.__new__
_set_method = Notification.__dict__["method"].__set__
_set_params = Notification.__dict__["params"].__set__

_KIND_NAMES: Final = {REQUEST: "request", RESPONSE: "response", NOTIFICATION: "notification"}
_LAYOUTS: Final = {
    REQUEST: "[0, msgid, method, params]",
    RESPONSE: "[1, msgid, error, result]",
    NOTIFICATION: "[2, method, params]",
}


def describe_value(value: object) -> str:
    """A short description of an untrusted decoded value for an error message.

    Never a full repr: a hostile value may be 32 MiB long or 1000 levels deep.
    """
    if value is None:
        return "nil"
    if isinstance(value, bool | int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"str {shown!r}"
    if isinstance(value, bytes):
        return f"bin of {len(value)} bytes"
    if isinstance(value, list):
        return f"array of {len(value)} elements"
    if isinstance(value, dict):
        return f"map of {len(value)} entries"
    return type(value).__name__


def _explain(exc: BaseException) -> str:
    """What was wrong, from whatever msgpack (or the object building) raised."""
    if isinstance(exc, msgpack.BufferFull):
        return "the frame is larger than the buffer limit"
    if isinstance(exc, msgpack.StackError):
        return "arrays/maps nested deeper than msgpack's limit (1024)"
    if isinstance(exc, msgpack.FormatError):
        return "not msgpack (a byte that starts no msgpack value)"
    if isinstance(exc, msgpack.ExtraData):
        return "bytes left over after one whole frame"
    if isinstance(exc, UnicodeDecodeError):
        return "a str that is not valid UTF-8"
    text = str(exc)
    if "max_ext_len" in text:
        return "msgpack ext types are not allowed"
    if "incomplete input" in text:
        return "the frame is truncated"
    if len(text) > 200:
        text = text[:200] + "..."
    return f"invalid msgpack ({type(exc).__name__}: {text})"


def _reject_ext(code: int, data: bytes) -> object:
    raise FrameError(f"msgpack ext types are not allowed (got ext type {code})")


class _ElementCount:
    """The list and map hook that counts a frame's elements as msgpack builds them and
    stops it past ``limit`` (msgpack builds each array or map once, even when its bytes
    arrive over many feeds, so the count is exact)."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.count = 0
        self.limit = limit

    def __call__(self, container: Any) -> Any:
        self.count += len(container) + 1
        if self.count > self.limit:
            raise FrameError(f"a frame with more than {self.limit} elements")
        return container


def _too_deep(value: object, limit: int) -> bool:
    """Whether arrays/maps in ``value`` nest more than ``limit`` deep (iterative: the
    value may be deeper than Python's recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Any
        if type(item) is list:
            children = item
        elif type(item) is dict:
            children = item.values()
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (list, dict))
    return False


def frame_from_object(obj: object) -> Frame:
    """Check that one decoded msgpack value is a frame, and wrap it.

    Notifications come first and cheapest: they are the Raft traffic.
    """
    if not isinstance(obj, list):
        raise FrameError(f"a frame must be an array, got {describe_value(obj)}")
    size = len(obj)
    if not size:
        raise FrameError("a frame must be a non-empty array")
    tag = obj[0]
    if type(tag) is not int or tag not in _LAYOUTS:
        raise FrameError(f"a frame must start with type 0, 1 or 2, got {describe_value(tag)}")
    if size != (3 if tag == NOTIFICATION else 4):
        raise FrameError(
            f"a {_KIND_NAMES[tag]} frame is {_LAYOUTS[tag]}, got an array of {size} elements"
        )
    if tag == NOTIFICATION:
        method, params = obj[1], obj[2]
        _check_method_params(method, params, "notification")
        # Built without the frozen __init__ (twice as slow): this is the Raft hot path.
        frame = _new(Notification)
        _set_method(frame, method)
        _set_params(frame, params)
        return frame
    msgid = obj[1]
    if type(msgid) is not int or not 0 <= msgid <= MAX_MSGID:
        raise FrameError(
            f"a {_KIND_NAMES[tag]} msgid must be an int in [0, 2**32), got {describe_value(msgid)}"
        )
    if tag == REQUEST:
        method, params = obj[2], obj[3]
        _check_method_params(method, params, "request")
        if _too_deep(params, MAX_NESTING_DEPTH):
            raise FrameError(f"request params nest deeper than {MAX_NESTING_DEPTH}")
        return Request(msgid, method, params)
    if _too_deep(obj[2], MAX_NESTING_DEPTH) or _too_deep(obj[3], MAX_NESTING_DEPTH):
        raise FrameError(f"a response's error or result nests deeper than {MAX_NESTING_DEPTH}")
    return Response(msgid, obj[2], obj[3])


def _check_method_params(method: object, params: object, kind: str) -> None:
    if type(method) is not str:
        raise FrameError(f"a {kind} method must be a str, got {describe_value(method)}")
    if type(params) is not list:
        raise FrameError(f"{kind} params must be an array, got {describe_value(params)}")


def unpack_whole(data: bytes) -> Any:
    """The one msgpack value that is all of ``data``, within the limits; FrameError if
    ``data`` is anything else (truncated, followed by extra bytes, over a limit)."""
    try:
        size = len(data)
        if size > MAX_FRAME_BYTES:
            raise FrameError(f"a frame of {size} bytes is over the limit of {MAX_FRAME_BYTES}")
        if size <= MAX_CONTAINER_LEN:
            # msgpack's defaults bound every length by len(data): tighter than ours.
            return msgpack.unpackb(
                data, raw=False, strict_map_key=True, max_ext_len=0, ext_hook=_reject_ext
            )
        # A frame of at most MAX_FRAME_ELEMENTS bytes cannot hold more elements.
        count = _ElementCount(MAX_FRAME_ELEMENTS) if size > MAX_FRAME_ELEMENTS else None
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_ext_len=0,
            ext_hook=_reject_ext,
            max_bin_len=MAX_BYTES_LEN,
            max_str_len=MAX_BYTES_LEN,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            list_hook=count,
            object_hook=count,
        )
    except FrameError:
        raise
    except Exception as exc:
        explanation = _explain(exc)
        if "exceeds max_" in explanation and len(data) <= MAX_CONTAINER_LEN:
            # Every limit was len(data): the header claims more than the frame holds.
            explanation = f"the frame is truncated (a length says more than its {len(data)} bytes)"
        raise FrameError(explanation) from exc


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one whole frame (the simulated network delivers frames whole).

    Raises FrameError if ``data`` is anything else: truncated, followed by extra bytes,
    over a limit, or not a frame.
    """
    return frame_from_object(unpack_whole(data))


_packer = msgpack.Packer(use_bin_type=True)
_pack = _packer.pack


def encode_frame(frame: Frame) -> bytes:
    """The msgpack bytes of one frame.

    Raises FrameError for a frame the peer would reject (a msgid outside 32 bits, a
    method that is not a str, params that are not a list) or values msgpack cannot
    encode (sets, objects, ints over 64 bits, str with lone surrogates).
    """
    obj: list[Any]
    if isinstance(frame, Notification):
        _check_outgoing_call(frame.method, frame.params)
        obj = [NOTIFICATION, frame.method, frame.params]
    elif isinstance(frame, Request):
        _check_outgoing_msgid(frame.msgid)
        _check_outgoing_call(frame.method, frame.params)
        obj = [REQUEST, frame.msgid, frame.method, frame.params]
    elif isinstance(frame, Response):
        _check_outgoing_msgid(frame.msgid)
        obj = [RESPONSE, frame.msgid, frame.error, frame.result]
    else:
        raise FrameError(f"not a frame: {type(frame).__name__}")
    try:
        return _pack(obj)
    except Exception as exc:
        raise FrameError(f"cannot encode {type(frame).__name__}: {exc}") from exc


def _check_outgoing_msgid(msgid: object) -> None:
    if type(msgid) is not int or not 0 <= msgid <= MAX_MSGID:
        raise FrameError(f"msgid must be an int in [0, 2**32), got {describe_value(msgid)}")


def _check_outgoing_call(method: object, params: object) -> None:
    if type(method) is not str:
        raise FrameError(f"method must be a str, got {describe_value(method)}")
    if type(params) is not list and type(params) is not tuple:
        raise FrameError(f"params must be a list, got {describe_value(params)}")


class FrameDecoder:
    """Cuts a byte stream (TCP: split anywhere) into frames, within hard limits.

    ``feed`` returns the frames completed by the new bytes; a partial frame waits for
    the rest. Limits: ``max_buffer_bytes`` is both the largest frame accepted and the
    most bytes held for one incomplete frame; ``max_container_len`` bounds every array
    and map; ``max_bytes_len`` bounds every str and bin. See the module docstring for
    what a lying header can cost before it is caught.

    After a FrameError the decoder is poisoned: the stream has lost its place (there are
    no frame boundaries to resync on), so every later ``feed`` raises FrameError too and
    the transport must close the connection. Frames completed earlier in the same
    ``feed`` call as the error are dropped with it; Raft tolerates lost messages.
    """

    __slots__ = ("max_buffer_bytes", "_unpacker", "_received", "_frame_start", "_error",
                 "_elements")

    def __init__(
        self,
        *,
        max_buffer_bytes: int = MAX_FRAME_BYTES,
        max_container_len: int = MAX_CONTAINER_LEN,
        max_bytes_len: int = MAX_BYTES_LEN,
        max_elements: int = MAX_FRAME_ELEMENTS,
    ) -> None:
        for name, limit in (
            ("max_buffer_bytes", max_buffer_bytes),
            ("max_container_len", max_container_len),
            ("max_bytes_len", max_bytes_len),
            ("max_elements", max_elements),
        ):
            if type(limit) is not int or limit < 1:
                raise ValueError(f"{name} must be a positive int, got {limit!r}")
        self.max_buffer_bytes = max_buffer_bytes
        self._elements = _ElementCount(max_elements)
        self._unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_reject_ext,
            # Our own check below is exact; msgpack's is a backstop it never reaches.
            max_buffer_size=max_buffer_bytes + _FEED_CHUNK,
            max_bin_len=max_bytes_len,
            max_str_len=max_bytes_len,
            max_array_len=max_container_len,
            max_map_len=max_container_len,
            max_ext_len=0,
            list_hook=self._elements,
            object_hook=self._elements,
        )
        self._received = 0  # stream offset just past the last byte fed
        self._frame_start = 0  # stream offset where the next frame starts
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not finished arriving."""
        return self._received - self._frame_start

    @property
    def error(self) -> FrameError | None:
        """The error that poisoned this decoder, if any."""
        return self._error

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete, in order."""
        if self._error is not None:
            raise FrameError(f"the stream is already broken: {self._error}")
        try:
            frames: list[Frame] = []
            size = len(data)
            if size <= _FEED_CHUNK:
                self._feed_chunk(data, frames)
            else:
                view = memoryview(data)
                for start in range(0, size, _FEED_CHUNK):
                    self._feed_chunk(view[start : start + _FEED_CHUNK], frames)
            return frames
        except FrameError as exc:
            self._error = exc
            raise
        except Exception as exc:
            self._error = FrameError(_explain(exc))
            raise self._error from exc

    def _feed_chunk(self, chunk: bytes | memoryview, frames: list[Frame]) -> None:
        unpacker = self._unpacker
        unpacker.feed(chunk)
        self._received += len(chunk)
        limit = self.max_buffer_bytes
        for obj in unpacker:
            end = unpacker.tell()
            if end - self._frame_start > limit:
                raise FrameError(
                    f"a frame of {end - self._frame_start} bytes is over the limit of {limit}"
                )
            self._frame_start = end
            self._elements.count = 0
            frames.append(frame_from_object(obj))
        if self._received - self._frame_start > limit:
            raise FrameError(
                f"an unfinished frame already holds {self._received - self._frame_start} "
                f"bytes, over the limit of {limit}"
            )
