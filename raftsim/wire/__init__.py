"""The wire: msgpack-rpc frames and the msgpack encoding of every Raft message.

``framing`` turns bytes into frames (whole, or from a stream split anywhere) within hard
limits; ``codec`` turns Raft messages into notification frames and back, checking every
value. Every error is a :class:`WireError` (a ``ValueError``).
"""

from raftsim.wire.codec import (
    MessageError,
    RoundEncoder,
    decode_message,
    decode_message_bytes,
    encode_message,
)
from raftsim.wire.framing import (
    MAX_BYTES_LEN,
    MAX_CONTAINER_LEN,
    MAX_FRAME_BYTES,
    MAX_FRAME_ELEMENTS,
    MAX_MSGID,
    MAX_NESTING_DEPTH,
    Frame,
    FrameDecoder,
    FrameError,
    Notification,
    Request,
    Response,
    WireError,
    decode_frame,
    encode_frame,
)
from raftsim.wire.payload import MAX_UINT

__all__ = [
    "MAX_BYTES_LEN",
    "MAX_CONTAINER_LEN",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_ELEMENTS",
    "MAX_MSGID",
    "MAX_NESTING_DEPTH",
    "MAX_UINT",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "MessageError",
    "Notification",
    "Request",
    "Response",
    "RoundEncoder",
    "WireError",
    "decode_frame",
    "decode_message",
    "decode_message_bytes",
    "encode_frame",
    "encode_message",
]
