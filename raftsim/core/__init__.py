"""The Raft algorithm as a pure, synchronous state machine.

Nothing in this package performs I/O, reads a clock or touches asyncio: time is the
``now`` argument of every input, randomness is the ``random.Random`` handed to the node,
and every output is plain data in a :class:`~raftsim.core.ready.Ready`.
"""
