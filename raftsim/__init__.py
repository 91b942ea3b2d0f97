"""raftsim: a Raft consensus simulator that is a real Raft implementation."""

__version__ = "0.1.0"
