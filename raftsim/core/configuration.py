"""Cluster membership: who votes, who only listens, and how one change is applied.

Vocabulary follows hashicorp/raft (``configurations{committed, committedIndex, latest,
latestIndex}``), which is what the operator API serves. A server uses the *latest*
configuration in its log, committed or not (dissertation §4.1); the operator API serves
the *committed* one.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field


class ConfigurationError(ValueError):
    """A membership change that cannot be applied; the message is Nomad's wording."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    address: str
    voter: bool = True


@dataclass(frozen=True, slots=True)
class Configuration:
    """An ordered list of servers (order is preserved: the API lists it as stored)."""

    servers: tuple[ServerInfo, ...] = ()
    #: the voters' ids, in order: derived from ``servers`` once (a leader counts them
    #: on every acknowledgement)
    voters: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "voters", tuple(s.id for s in self.servers if s.voter))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.servers)

    def is_voter(self, server_id: str) -> bool:
        return any(s.id == server_id and s.voter for s in self.servers)

    def get(self, server_id: str) -> ServerInfo | None:
        for s in self.servers:
            if s.id == server_id:
                return s
        return None

    def by_address(self, address: str) -> ServerInfo | None:
        for s in self.servers:
            if s.address == address:
                return s
        return None

    def encode(self) -> bytes:
        return json.dumps(
            [[s.id, s.address, s.voter] for s in self.servers], separators=(",", ":")
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Configuration:
        if not data:
            return cls()
        raw = json.loads(data)
        return cls(tuple(ServerInfo(str(i), str(a), bool(v)) for i, a, v in raw))


class ChangeKind(enum.Enum):
    ADD_VOTER = "add-voter"
    ADD_NONVOTER = "add-nonvoter"
    PROMOTE = "promote"
    DEMOTE = "demote"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One single-server change (dissertation §4.1: one server at a time is always safe)."""

    kind: ChangeKind
    server_id: str
    address: str = ""


def apply_change(config: Configuration, change: ConfigChange) -> Configuration:
    """The configuration after ``change``; raises ConfigurationError when it makes no
    sense (unknown server, last voter removed)."""
    existing = config.get(change.server_id)
    servers = list(config.servers)
    if change.kind in (ChangeKind.ADD_VOTER, ChangeKind.ADD_NONVOTER):
        voter = change.kind is ChangeKind.ADD_VOTER
        if existing is not None:
            if existing.voter and not voter:
                raise ConfigurationError(f'id "{change.server_id}" is already a voter')
            # Re-adding is idempotent, as in hashicorp/raft; adding as voter promotes.
            new = ServerInfo(existing.id, change.address or existing.address, voter)
            servers[servers.index(existing)] = new
        else:
            if not change.address:
                raise ConfigurationError("an address is required to add a server")
            if config.by_address(change.address) is not None:
                raise ConfigurationError(
                    f'address "{change.address}" is already in the Raft configuration'
                )
            servers.append(ServerInfo(change.server_id, change.address, voter))
    else:
        if existing is None:
            raise ConfigurationError(
                f'id "{change.server_id}" was not found in the Raft configuration'
            )
        if change.kind is ChangeKind.PROMOTE:
            servers[servers.index(existing)] = ServerInfo(existing.id, existing.address, True)
        elif change.kind is ChangeKind.DEMOTE:
            servers[servers.index(existing)] = ServerInfo(existing.id, existing.address, False)
        else:
            servers.remove(existing)
    result = Configuration(tuple(servers))
    if not result.voters:
        raise ConfigurationError("need at least one voter in configuration")
    return result


def encode_indexed(index: int, config: Configuration) -> bytes:
    """A configuration together with the index of the entry that created it: what a
    snapshot keeps so the API can still say which entry the configuration came from."""
    return json.dumps({"index": index, "servers": json.loads(config.encode())}).encode()


def decode_indexed(data: bytes) -> tuple[int, Configuration]:
    if not data:
        return 0, Configuration()
    raw = json.loads(data)
    return int(raw["index"]), Configuration.decode(json.dumps(raw["servers"]).encode())
