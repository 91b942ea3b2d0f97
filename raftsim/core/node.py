"""One Raft server's algorithm, as a synchronous state machine (etcd-io/raft's raft.go).

Every input carries ``now``; every input returns a :class:`Ready` describing what to
persist, send and apply, and when the node next wants :meth:`RaftNode.on_timeout`.
Sending a message only appends it to a list; nothing here blocks, sleeps or reads a clock.

Section references are to the Raft paper (Ongaro & Ousterhout 2014) and Ongaro's
dissertation (2014), "§9.6" meaning dissertation section 9.6.
"""

from __future__ import annotations

import enum
import operator
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from raftsim.core import quorum
from raftsim.core.configuration import (
    ConfigChange,
    Configuration,
    ConfigurationError,
    apply_change,
    decode_indexed,
    encode_indexed,
)
from raftsim.core.errors import (
    ChangeNotAllowedYet,
    NotLeader,
    ProposalDropped,
    UncommittedLimitReached,
)
from raftsim.core.log import RaftLog
from raftsim.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    TimeoutNow,
    command_entries,
)
from raftsim.core.ready import Event, ReadState, Ready, Role
from raftsim.core.settings import NodeSettings

INF = float("inf")
_INDEX = operator.attrgetter("index")


class ReplicationState(enum.Enum):
    """How the leader is sending to one follower (etcd's tracker.StateType)."""

    PROBE = "probe"  # one message at a time until the follower's log position is found
    REPLICATE = "replicate"  # pipelined: many messages in flight
    SNAPSHOT = "snapshot"  # an InstallSnapshot is on its way, in chunks


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (paper Figure 2: nextIndex, matchIndex)."""

    next: int
    match: int = 0
    state: ReplicationState = ReplicationState.PROBE
    paused: bool = False
    #: (last index, time sent, entry bytes) of each AppendEntries in flight while
    #: replicating, and the sum of their bytes (etcd's Inflights with MaxInflightBytes)
    inflight: deque[tuple[int, float, int]] = field(default_factory=deque)
    inflight_bytes: int = 0
    #: how long this follower took to acknowledge an AppendEntries, lately: the largest
    #: recent round trip, decaying towards smaller ones (see _handle_append_response)
    round_trip: float = 0.0
    recent_active: bool = False
    last_response: float = -INF
    snapshot_index: int = 0
    #: when the snapshot being streamed last made progress (sent, or a chunk acknowledged)
    snapshot_sent_at: float = -INF
    #: the snapshot being streamed: kept even if the leader compacts again meanwhile, so
    #: a long transfer is not restarted by every compaction (hashicorp/raft keeps the
    #: snapshot it is sending open the same way)
    snapshot: Snapshot | None = None
    #: the next byte of ``snapshot`` to send, and how many the follower acknowledged
    snapshot_next: int = 0
    snapshot_acked: int = 0
    #: after a resend from ``snapshot_acked``: one chunk at a time until the follower
    #: acknowledges more, so a follower that is gone is not sent a whole window again
    snapshot_probe: bool = False
    #: the chunk marked ``done`` was sent: nothing more until an answer or a resend
    snapshot_all_sent: bool = False

    def clear_inflight(self) -> None:
        self.inflight.clear()
        self.inflight_bytes = 0


@dataclass(slots=True)
class PendingSnapshot:
    """A follower's chunks of one snapshot, until it has them all. One leader in one
    term streams one snapshot at a time, so (index, term, leader term) names it."""

    index: int
    term: int
    leader_term: int
    configuration: bytes
    #: the first ``size`` bytes, in order. Chunks are appended as they arrive (a
    #: bytearray grows in place), so the last one costs a chunk, not a join of the whole
    #: snapshot (200 MiB stalled a live server's event loop for ~150 ms). The completed
    #: buffer becomes the installed Snapshot's data and is never changed after.
    buffer: bytearray = field(default_factory=bytearray)
    size: int = 0
    #: chunks that arrived ahead of a missing one (messages may be reordered), by offset
    early: dict[int, bytes] = field(default_factory=dict)
    early_bytes: int = 0
    #: the snapshot's length, known once the chunk marked ``done`` arrived
    total: int | None = None

    def add(self, offset: int, data: bytes, limit: int) -> None:
        """Take the chunk at ``offset``: extend the prefix, or hold it for later (up to
        ``limit`` bytes held; a chunk past that is dropped and sent again)."""
        if offset > self.size:
            if offset not in self.early and self.early_bytes + len(data) <= limit:
                self.early[offset] = data
                self.early_bytes += len(data)
            return
        self._extend(offset, data)
        while self.early:
            ready = [o for o in self.early if o <= self.size]
            if not ready:
                return
            for o in sorted(ready):
                data = self.early.pop(o)
                self.early_bytes -= len(data)
                self._extend(o, data)

    def _extend(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end > self.size:
            self.buffer += memoryview(data)[self.size - offset:]
            self.size = end


@dataclass(slots=True)
class PendingRead:
    """A read waiting for leadership to be confirmed (§6.4). ``context`` is the first
    heartbeat round sent after the read arrived: an answer to that round or to any later
    one confirms it."""

    request_id: int
    index: int
    context: int
    acks: set[str]


class RaftNode:
    """A Raft server's protocol state. Build one from what storage returned at start."""

    def __init__(
        self,
        node_id: str,
        settings: NodeSettings,
        rng: random.Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
        now: float = 0.0,
        snapshot_check: Callable[[bytes | bytearray], str | None] | None = None,
    ) -> None:
        self.id = node_id
        self.settings = settings
        self._rng = rng
        #: what is wrong with an assembled snapshot's state machine data, or None. The
        #: state machine's format is not the core's business, but a snapshot that
        #: arrives in chunks can only be checked whole, here, before it replaces the log.
        self._snapshot_check = snapshot_check
        hs = hard_state or HardState()
        self.term = hs.term
        self.voted_for = hs.voted_for
        self.snapshot = snapshot
        self.log = RaftLog(
            entries, snapshot.index if snapshot else 0, snapshot.term if snapshot else 0
        )
        self.commit_index = max(hs.commit, snapshot.index if snapshot else 0)
        self.commit_index = min(self.commit_index, self.log.last_index)
        #: highest index handed to the application in a Ready
        self.applied = snapshot.index if snapshot else 0
        self._configs: list[tuple[int, Configuration]] = []
        self._rebuild_configs()
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self.last_leader_contact = -INF
        self._votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self._reads: list[PendingRead] = []
        self._reads_waiting_for_commit: list[int] = []
        self._read_context = 0
        #: lease reads: when each read round's heartbeats were sent, and the lease end
        self._read_round_sent: dict[int, float] = {}
        self._lease_until = -INF
        self.transfer_target: str | None = None
        self._transfer_deadline = INF
        self._election_deadline = INF
        self._heartbeat_deadline = INF
        self._quorum_check_deadline = INF
        self._persisted = HardState(self.term, self.voted_for, self.commit_index)
        # outputs gathered until the next Ready
        self._messages: list[Message] = []
        self._events: list[Event] = []
        self._persist_from: int | None = None
        self._snapshot_out: Snapshot | None = None
        self._restore: Snapshot | None = None
        self._read_states: list[ReadState] = []
        #: command bytes appended as leader and not yet committed (etcd's uncommittedSize)
        self.uncommitted_bytes = 0
        #: the chunks of a snapshot being received from the leader
        self.pending_snapshot: PendingSnapshot | None = None
        self._reset_election_timer(now)

    # ------------------------------------------------------------------ inspection

    @property
    def configuration(self) -> Configuration:
        """The latest configuration in the log: the one this server acts on (§4.1)."""
        return self._configs[-1][1]

    @property
    def configuration_index(self) -> int:
        return self._configs[-1][0]

    @property
    def committed_configuration(self) -> tuple[int, Configuration]:
        """(index, configuration) of the newest configuration entry that is committed."""
        for index, config in reversed(self._configs):
            if index <= self.commit_index:
                return index, config
        return self._configs[0]

    def configuration_at(self, index: int) -> tuple[int, Configuration]:
        for cfg_index, config in reversed(self._configs):
            if cfg_index <= index:
                return cfg_index, config
        return self._configs[0]

    @property
    def promotable(self) -> bool:
        """A voter in its own latest configuration may stand for election; so may any
        server while that configuration is uncommitted, as it "might still be needed
        until the Cnew entry is committed" (§4.2.2; hashicorp/raft's "not part of
        stable configuration"). Its own vote counts only if it is a voter."""
        return self.configuration.is_voter(self.id) or self.configuration_index > self.commit_index

    @property
    def committed_in_term(self) -> bool:
        return self.log.term_at(self.commit_index) == self.term

    def hard_state(self) -> HardState:
        return HardState(self.term, self.voted_for, self.commit_index)

    def deadline(self) -> float:
        """When the node next needs ``on_timeout`` (the ``deadline`` of the Ready it
        would give now). Before it, ``on_timeout`` does nothing: a driver whose timer
        fired early (set for a deadline that has moved since) may wait for this one."""
        if self.role is Role.LEADER:
            return min(self._heartbeat_deadline, self._quorum_check_deadline,
                       self._transfer_deadline)
        return self._election_deadline

    # ------------------------------------------------------------------ inputs

    def on_timeout(self, now: float) -> Ready:
        if self.role is Role.LEADER:
            if now >= self._quorum_check_deadline:
                self._check_quorum(now)
            if self.role is Role.LEADER and now >= self._transfer_deadline:
                self._abort_transfer("the target did not take over within an election "
                                     "timeout")
            if self.role is Role.LEADER and now >= self._heartbeat_deadline:
                self._broadcast_heartbeat(now, context=0)
        elif now >= self._election_deadline:
            if self.promotable:
                self._event("election-timeout")
                self._campaign(now, pre_vote=self.settings.pre_vote)
            else:
                self._reset_election_timer(now)
        return self._ready()

    def step(self, m: Message, now: float) -> Ready:
        if m.target != self.id:
            return self._ready()
        if m.term > self.term:
            if isinstance(m, RequestVote):
                leader_known = self.role is Role.LEADER or self.leader_id is not None
                in_lease = leader_known and (
                    self.role is Role.LEADER
                    or now - self.last_leader_contact < self.settings.election_timeout_min
                )
                # §4.2.3 / §9.6: while we hear from a leader, a vote request is most
                # likely from a removed or partitioned server; ignoring it keeps that
                # server from disrupting the cluster.
                if in_lease and not m.transfer and (m.pre_vote or self.settings.check_quorum):
                    self._event("vote-ignored", candidate=m.source, pre_vote=m.pre_vote,
                                reason="heard from leader recently")
                    return self._ready()
            pre_vote_traffic = (isinstance(m, RequestVote) and m.pre_vote) or (
                isinstance(m, RequestVoteResponse) and m.pre_vote and m.granted
            )
            if not pre_vote_traffic:
                leader = m.source if isinstance(m, AppendEntries | InstallSnapshot) else None
                self._become_follower(m.term, leader, now)
        elif m.term < self.term:
            # Tell a stale leader or candidate about the newer term (paper Figure 2).
            if isinstance(m, AppendEntries):
                self._send(AppendEntriesResponse(self.term, self.id, m.source, False, 0))
            elif isinstance(m, InstallSnapshot):
                self._send(InstallSnapshotResponse(self.term, self.id, m.source, 0))
            elif isinstance(m, RequestVote):
                self._send(RequestVoteResponse(self.term, self.id, m.source, False, m.pre_vote))
            return self._ready()

        if isinstance(m, AppendEntries):
            self._handle_append_entries(m, now)
        elif isinstance(m, AppendEntriesResponse):
            self._handle_append_response(m, now)
        elif isinstance(m, RequestVote):
            self._handle_request_vote(m, now)
        elif isinstance(m, RequestVoteResponse):
            self._handle_vote_response(m, now)
        elif isinstance(m, InstallSnapshot):
            self._handle_install_snapshot(m, now)
        elif isinstance(m, InstallSnapshotResponse):
            self._handle_snapshot_response(m, now)
        elif isinstance(m, TimeoutNow):
            if self.leader_id is not None and m.source != self.leader_id:
                # Only the leader hands leadership over (§3.10); a TimeoutNow from anyone
                # else would let any server start elections at will.
                self._event("timeout-now-ignored", source=m.source, leader=self.leader_id)
            elif self.promotable and self.role is not Role.LEADER:
                self._event("timeout-now", source=m.source)
                self._campaign(now, pre_vote=False, transfer=True)
        return self._ready()

    def propose(self, command: bytes, now: float) -> Ready:
        """Append a client command; ``Ready.proposed`` says which (index, term) it got."""
        self._require_leader()
        if self.transfer_target is not None:
            raise ProposalDropped("leadership transfer in progress")
        limit = self.settings.max_uncommitted_bytes
        if limit and self.uncommitted_bytes and self.uncommitted_bytes + len(command) > limit:
            raise UncommittedLimitReached(self.uncommitted_bytes, limit)
        self.uncommitted_bytes += len(command)
        entry = self._append_new(EntryKind.COMMAND, command)
        self._broadcast_append(now)
        self._maybe_commit(now)
        ready = self._ready()
        ready.proposed = (entry.index, entry.term)
        return ready

    def propose_many(self, commands: Sequence[bytes], now: float) -> tuple[Ready, int]:
        """Append client commands, one entry each, as ``propose`` would one after the
        other, but with one round of messages and one commit check for all of them (as
        hashicorp/raft's leader dispatches a batch of applies). Returns the Ready
        (``proposed``: the first one's (index, term); the others follow it) and how many
        were appended: all, or as many as ``max_uncommitted_bytes`` takes (the first is
        refused, with UncommittedLimitReached, only where ``propose`` would refuse it)."""
        self._require_leader()
        if self.transfer_target is not None:
            raise ProposalDropped("leadership transfer in progress")
        if not commands:
            raise ValueError("propose_many needs at least one command")
        limit = self.settings.max_uncommitted_bytes
        uncommitted = self.uncommitted_bytes
        taken: list[bytes] = []
        for command in commands:
            if limit and uncommitted and uncommitted + len(command) > limit:
                if not taken:
                    raise UncommittedLimitReached(uncommitted, limit)
                break
            uncommitted += len(command)
            taken.append(command)
        self.uncommitted_bytes = uncommitted
        # What _append_new does for each, in one go: one log append, entries built
        # without the frozen dataclass's __init__ (see command_entries).
        term, first = self.term, self.log.last_index + 1
        self.log.extend(command_entries(term, first, taken))
        if self._persist_from is None or first < self._persist_from:
            self._persist_from = first
        self._broadcast_append(now)
        self._maybe_commit(now)
        ready = self._ready()
        ready.proposed = (first, term)
        return ready, len(taken)

    def change_configuration(self, change: ConfigChange, now: float) -> Ready:
        """Append a single-server membership change as a CONFIGURATION entry (§4.1)."""
        self._require_leader()
        if self.transfer_target is not None:
            raise ProposalDropped("leadership transfer in progress")
        if self.configuration_index > self.commit_index:
            raise ChangeNotAllowedYet("a configuration change is still uncommitted")
        if not self.committed_in_term and not self._bug("config-before-noop"):
            # The 2015 raft-dev fix: a new leader must commit in its term first, or a
            # change it makes can overlap an uncommitted one from a previous leader.
            raise ChangeNotAllowedYet("the leader has not yet committed an entry in its term")
        config = apply_change(self.configuration, change)
        entry = self._append_new(EntryKind.CONFIGURATION, config.encode())
        self._sync_progress_with_configuration(drop_removed=False, newcomers_active=True)
        self._broadcast_append(now)
        self._maybe_commit(now)
        ready = self._ready()
        ready.proposed = (entry.index, entry.term)
        return ready

    def transfer_leadership(self, target: str | None, now: float) -> Ready:
        """Hand leadership to ``target`` (or the most up-to-date voter): catch it up,
        then send TimeoutNow (§3.10)."""
        self._require_leader()
        config = self.configuration
        if target is None:
            candidates = [v for v in config.voters if v != self.id]
            if not candidates:
                raise ConfigurationError("no other voter to transfer leadership to")
            target = max(candidates, key=lambda v: (self.progress[v].match, v))
        if target == self.id:
            # etcd's TestLeaderTransferBack: asking for the current leader cancels.
            self._abort_transfer("transfer to the leader itself")
            return self._ready()
        if not config.is_voter(target):
            raise ConfigurationError(f'id "{target}" is not a voter in the Raft configuration')
        if target == self.transfer_target:
            # A retried request must not push the deadline out: the leader would refuse
            # writes for as long as a client keeps retrying.
            return self._ready()
        self._abort_transfer("transfer to another server requested")
        self.transfer_target = target
        self._transfer_deadline = now + self.settings.election_timeout_max
        self._event("transfer-start", target=target)
        pr = self.progress[target]
        if pr.match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, target))
        else:
            self._send_append(target, now, allow_empty=True)
        return self._ready()

    def read_index(self, request_id: int, now: float) -> Ready:
        """Start a linearizable read (§6.4): the answer is a ReadState in a later Ready."""
        self._require_leader()
        if self._bug("stale-read"):
            self._read_states.append(ReadState(request_id, self.commit_index))
        elif not self.committed_in_term:
            # The leader's commit index is only known to be current once it has
            # committed an entry of its own term (its no-op).
            self._reads_waiting_for_commit.append(request_id)
        elif (self.settings.lease_reads and self.settings.check_quorum
              and now < self._lease_until and self.transfer_target is None):
            # no other leader can be elected before the lease ends -- if every clock
            # runs at the rate of ours
            self._read_states.append(ReadState(request_id, self.commit_index))
        else:
            self._start_reads([request_id], now)
        return self._ready()

    def cancel_transfer(self, now: float) -> Ready:
        """Give up a pending leadership transfer and take writes again at once."""
        self._abort_transfer("cancelled")
        return self._ready()

    def campaign(self, now: float) -> Ready:
        """Start an election now, as if the election timer fired (etcd's Campaign).
        Ignored by a leader and by a server that may not stand for election."""
        if self.role is not Role.LEADER and self.promotable:
            self._event("campaign")
            self._campaign(now, pre_vote=self.settings.pre_vote)
        return self._ready()

    def heartbeat(self, now: float) -> Ready:
        """Send a heartbeat round now, as if the heartbeat timer fired (etcd's MsgBeat).
        Ignored by a server that does not lead."""
        if self.role is Role.LEADER:
            self._broadcast_heartbeat(now, context=0)
        return self._ready()

    def report_unreachable(self, peer: str, now: float) -> Ready:
        """The caller could not reach ``peer`` (etcd's ReportUnreachable): stop
        pipelining to it and probe with one message at a time until it answers."""
        pr = self.progress.get(peer) if self.role is Role.LEADER else None
        if pr is not None and pr.state is ReplicationState.REPLICATE:
            pr.state = ReplicationState.PROBE
            pr.next = pr.match + 1
            pr.inflight.clear()
            pr.paused = False
            self._event("peer-unreachable", peer=peer)
        return self._ready()

    def snapshot_at(self, index: int, data: bytes | bytearray) -> Snapshot:
        """The snapshot ``compact(index, data)`` makes, without compacting: a live server
        writes its file to disk first, off its event loop, then compacts."""
        if index > self.applied:
            raise ValueError(f"cannot snapshot at {index}: only {self.applied} applied")
        term = self.log.term_at(index)
        if term is None:
            raise ValueError(f"cannot snapshot at {index}: the log holds "
                             f"{self.log.snapshot_index + 1}..{self.log.last_index}")
        cfg_index, config = self.configuration_at(index)
        return Snapshot(index, term, encode_indexed(cfg_index, config), data)

    def compact(self, index: int, data: bytes | bytearray, now: float) -> Ready:
        """Replace the log up to ``index`` (applied) with a snapshot of the state machine."""
        if index > self.applied:
            raise ValueError(f"cannot snapshot at {index}: only {self.applied} applied")
        if index <= self.log.snapshot_index:
            return self._ready()
        snap = self.snapshot_at(index, data)
        term = snap.term
        self.log.compact(index, term, keep=self.settings.trailing_logs)
        self.snapshot = snap
        self._snapshot_out = snap
        self._event("snapshot", index=index)
        return self._ready()

    # ------------------------------------------------------------------ roles

    def _become_follower(self, term: int, leader: str | None, now: float) -> None:
        was = self.role
        self._lease_until = -INF
        self._read_round_sent.clear()
        if term > self.term:
            self.term = term
            self.voted_for = None
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self._reset_election_timer(now)
        if was is Role.LEADER:
            self._leave_leadership()
        if was is not Role.FOLLOWER or leader is not None:
            self._event("role", role=self.role.value, leader=leader)

    def _leave_leadership(self) -> None:
        self.progress = {}
        for read in self._reads:
            self._read_states.append(ReadState(read.request_id, None))
        for request_id in self._reads_waiting_for_commit:
            self._read_states.append(ReadState(request_id, None))
        self._reads = []
        self._reads_waiting_for_commit = []
        self.transfer_target = None
        self._transfer_deadline = INF
        self._heartbeat_deadline = INF
        self._quorum_check_deadline = INF

    def _abort_transfer(self, reason: str) -> None:
        if self.transfer_target is None:
            return
        self._event("transfer-aborted", target=self.transfer_target, reason=reason)
        self.transfer_target = None
        self._transfer_deadline = INF

    def _campaign(self, now: float, *, pre_vote: bool, transfer: bool = False) -> None:
        self._reset_election_timer(now)
        self.leader_id = None
        self._votes = {self.id: True}
        if pre_vote:
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
        else:
            self.role = Role.CANDIDATE
            self.term += 1
            self.voted_for = self.id
            term = self.term
        self._event("role", role=self.role.value, leader=None)
        for voter in self.configuration.voters:
            if voter != self.id:
                self._send(RequestVote(term, self.id, voter, self.log.last_index,
                                       self.log.last_term, pre_vote, transfer))
        self._tally_votes(now)

    def _tally_votes(self, now: float) -> None:
        outcome = quorum.vote_outcome(self.configuration.voters, self._votes)
        if outcome is True:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(now, pre_vote=False)
            else:
                self._become_leader(now)
        elif outcome is False:
            self._become_follower(self.term, None, now)

    def _become_leader(self, now: float) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self.progress = {}
        self.uncommitted_bytes = 0
        self._sync_progress_with_configuration(drop_removed=True)
        self._event("role", role=self.role.value, leader=self.id)
        # A no-op of the new term lets the leader commit everything before it (§5.4.2).
        self._append_new(EntryKind.NOOP, b"")
        self._quorum_check_deadline = now + self.settings.election_timeout_min
        self._heartbeat_deadline = now + self.settings.heartbeat_interval
        self._broadcast_append(now)
        self._maybe_commit(now)

    def _check_quorum(self, now: float) -> None:
        voters = self.configuration.voters
        active = [p for p, pr in self.progress.items() if pr.recent_active]
        if self.configuration.is_voter(self.id):
            active.append(self.id)
        if self.settings.check_quorum and not quorum.has_quorum(voters, active):
            self._event("step-down", reason="no quorum heard within an election timeout")
            self._become_follower(self.term, None, now)
            return
        for pr in self.progress.values():
            pr.recent_active = False
        self._quorum_check_deadline = now + self.settings.election_timeout_min

    def _reset_election_timer(self, now: float) -> None:
        lo, hi = self.settings.election_timeout_min, self.settings.election_timeout_max
        self._election_deadline = now + lo + self._rng.random() * (hi - lo)

    def _require_leader(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader_id)

    # ------------------------------------------------------------------ votes

    def _handle_request_vote(self, m: RequestVote, now: float) -> None:
        # etcd's canVote: a pre-vote for a later term is granted on the log check
        # alone; at the voter's own term, a pre-vote follows the vote rule (§9.6).
        can_vote = (
            self.voted_for == m.source
            or (self.voted_for is None and self.leader_id is None)
            or (m.pre_vote and m.term > self.term)
        )
        up_to_date = (m.last_log_term, m.last_log_index) >= (self.log.last_term,
                                                             self.log.last_index)
        if self._bug("no-log-check"):
            up_to_date = True
        if can_vote and up_to_date:
            if not m.pre_vote:
                self.voted_for = m.source
                self._reset_election_timer(now)
            self._event("vote", candidate=m.source, granted=True, pre_vote=m.pre_vote)
            term = m.term if m.pre_vote else self.term
            self._send(RequestVoteResponse(term, self.id, m.source, True, m.pre_vote))
        else:
            self._event("vote", candidate=m.source, granted=False, pre_vote=m.pre_vote)
            self._send(RequestVoteResponse(self.term, self.id, m.source, False, m.pre_vote))

    def _handle_vote_response(self, m: RequestVoteResponse, now: float) -> None:
        if m.pre_vote:
            if self.role is not Role.PRE_CANDIDATE or (m.granted and m.term != self.term + 1):
                return
        elif self.role is not Role.CANDIDATE or m.term != self.term:
            return
        if not self.configuration.is_voter(m.source):
            return
        self._votes[m.source] = m.granted
        self._tally_votes(now)

    # ------------------------------------------------------------------ replication

    def _handle_append_entries(self, m: AppendEntries, now: float) -> None:
        if self.role is not Role.FOLLOWER or self.leader_id != m.source:
            self._become_follower(m.term, m.source, now)
        self.last_leader_contact = now
        self._reset_election_timer(now)
        if m.prev_log_index < self.commit_index:
            # Everything up to our commit index is known to match; tell the leader.
            self._send(AppendEntriesResponse(self.term, self.id, m.source, True,
                                             self.commit_index, context=m.context))
            return
        local_term = self.log.term_at(m.prev_log_index)
        if local_term != m.prev_log_term:
            if local_term is None:
                hint_term, hint_index = 0, self.log.last_index + 1
            else:
                hint_term = local_term
                hint_index = self.log.first_index_of_term(local_term, m.prev_log_index)
            self._send(AppendEntriesResponse(self.term, self.id, m.source, False,
                                             m.prev_log_index, hint_term, hint_index,
                                             m.context))
            return
        entries = m.entries
        first = m.prev_log_index + 1
        if (entries and first == self.log.last_index + 1
                and list(map(_INDEX, entries)) == list(range(first, first + len(entries)))):
            # All of them are new, and in order (what a follower that keeps up always
            # gets): appended in one go, as _append_local would one by one.
            self.log.extend(list(entries))
            if self._persist_from is None or entries[0].index < self._persist_from:
                self._persist_from = entries[0].index
            configuration = EntryKind.CONFIGURATION
            for entry in entries:
                if entry.kind is configuration:
                    self._configuration_appended(entry)
            entries = ()
        for entry in entries:
            existing = self.log.term_at(entry.index)
            if existing is None:
                self._append_local(entry)
            elif existing != entry.term:
                if self._bug("no-truncate"):
                    continue  # keeps the conflicting entry: logs silently diverge
                self._truncate_from(entry.index)
                self._append_local(entry)
        last_new = m.prev_log_index + len(m.entries)
        if m.leader_commit > self.commit_index:
            self._set_commit(min(m.leader_commit, last_new), now)
        self._send(AppendEntriesResponse(self.term, self.id, m.source, True, last_new,
                                         context=m.context))

    def _handle_append_response(self, m: AppendEntriesResponse, now: float) -> None:
        if self.role is not Role.LEADER:
            return
        pr = self.progress.get(m.source)
        if pr is None:
            return
        pr.recent_active = True
        pr.last_response = now
        if m.context:
            self._ack_reads(m.source, m.context, now)
        if pr.state is ReplicationState.SNAPSHOT and not (
                m.success and m.match_index >= pr.snapshot_index):
            # An answer to a heartbeat (a read round) sent while a snapshot streams: the
            # stream has its own acknowledgements and resend timer, and treating this as
            # a lost append would restart it from its first byte.
            return
        if not m.success:
            rejected = m.match_index
            if rejected <= pr.match or (
                pr.state is not ReplicationState.REPLICATE and rejected != pr.next - 1
            ):
                return  # a stale rejection of something already superseded
            if m.conflict_term:
                last_of_term = self.log.last_index_of_term(m.conflict_term)
                hint = last_of_term + 1 if last_of_term is not None else m.conflict_index
            else:
                hint = m.conflict_index
            # Never past our own log, whatever the follower says (a hint past it would
            # make the next AppendEntries start where there is nothing to send).
            pr.next = min(max(pr.match + 1, min(hint, rejected)), self.log.last_index + 1)
            pr.state = ReplicationState.PROBE
            pr.clear_inflight()
            pr.paused = False
            self._send_append(m.source, now, allow_empty=True)
            return
        # A follower cannot hold more than the leader sent it: a larger claim (only a
        # forged or corrupted message makes one) would commit past the log.
        match = min(m.match_index, self.log.last_index)
        progressed = match > pr.match
        if progressed:
            pr.match = match
        sent_at = None
        while pr.inflight and pr.inflight[0][0] <= pr.match:
            _, sent_at, size = pr.inflight.popleft()
            pr.inflight_bytes -= size
        if sent_at is not None:
            taken = now - sent_at
            pr.round_trip = (taken if taken > pr.round_trip
                             else pr.round_trip + (taken - pr.round_trip) / 8)
        if pr.state is ReplicationState.PROBE or (
            pr.state is ReplicationState.SNAPSHOT and pr.match >= pr.snapshot_index
        ):
            pr.state = ReplicationState.REPLICATE
            pr.snapshot = None
            pr.next = pr.match + 1
            pr.clear_inflight()
        pr.next = max(pr.next, pr.match + 1)
        pr.paused = False
        if progressed:
            self._maybe_commit(now)
        if not self._leading():  # a committed configuration without it stepped it down
            return
        if m.source == self.transfer_target and pr.match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, m.source))
        if (
            not progressed
            and pr.match < self.log.last_index
            and (not pr.inflight or now - pr.inflight[0][1]
                 >= max(self.settings.heartbeat_interval, 2 * pr.round_trip))
        ):
            # The follower is behind and nothing sent recently is still on its way:
            # an AppendEntries was lost. Probe again from what it has acknowledged.
            # "Recently" is a heartbeat interval, or twice the follower's recent round
            # trip if that is longer (TCP's retransmission timeout adapts the same way):
            # this answer may be to a heartbeat sent before the oldest AppendEntries in
            # flight, and a follower (or this leader) that works through large batches
            # on a busy machine takes longer than a heartbeat interval to answer. Taking
            # that for a loss resends everything in flight and pipelines one message at
            # a time until the probe is answered, which slows it down further.
            pr.state = ReplicationState.PROBE
            pr.next = pr.match + 1
            pr.clear_inflight()
            self._send_append(m.source, now, allow_empty=True)
        elif pr.next <= self.log.last_index:
            self._send_append(m.source, now)

    def _send_append(self, peer: str, now: float, *, allow_empty: bool = False) -> None:
        pr = self.progress[peer]
        while True:
            if pr.state is ReplicationState.SNAPSHOT:
                return
            if pr.state is ReplicationState.PROBE and pr.paused:
                return
            if (len(pr.inflight) >= self.settings.max_inflight
                    or pr.inflight_bytes >= self.settings.max_inflight_bytes):
                return
            prev = pr.next - 1
            prev_term = self.log.term_at(prev)
            if prev_term is None:
                self._send_snapshot(peer, now)
                return
            entries, size = self._entries_to_send(pr.next)
            if not entries and not allow_empty:
                return
            self._send(AppendEntries(self.term, self.id, peer, prev, prev_term, entries,
                                     self.commit_index))
            if pr.state is ReplicationState.PROBE:
                pr.paused = True
                return
            if not entries:
                return
            pr.next = entries[-1].index + 1
            pr.inflight.append((entries[-1].index, now, size))
            pr.inflight_bytes += size
            allow_empty = False

    def _entries_to_send(self, first: int) -> tuple[tuple[Entry, ...], int]:
        """Entries from ``first`` for one AppendEntries, and their data bytes: at most
        max_entries_per_message, and no more than max_bytes_per_message of data unless
        the first entry alone is larger (etcd's limitSize: always at least one)."""
        entries = self.log.slice(first, first + self.settings.max_entries_per_message)
        limit = self.settings.max_bytes_per_message
        size = 0
        for count, entry in enumerate(entries):
            size += len(entry.data)
            if size > limit and count:
                return tuple(entries[:count]), size - len(entry.data)
        return tuple(entries), size

    def _send_snapshot(self, peer: str, now: float) -> None:
        """Start streaming the current snapshot to ``peer``, from its first byte."""
        snap = self.snapshot
        assert snap is not None, "a compacted log always has a snapshot"
        pr = self.progress[peer]
        pr.state = ReplicationState.SNAPSHOT
        pr.snapshot = snap
        pr.snapshot_index = snap.index
        pr.snapshot_sent_at = now
        pr.snapshot_next = pr.snapshot_acked = 0
        pr.snapshot_probe = pr.snapshot_all_sent = False
        pr.clear_inflight()
        self._event("send-snapshot", peer=peer, index=snap.index, size=len(snap.data))
        self._send_snapshot_chunks(peer, pr)

    def _send_snapshot_chunks(self, peer: str, pr: Progress) -> None:
        """Send the next chunks of the snapshot while the follower's window allows:
        at most max_inflight_bytes unacknowledged (always one chunk), one chunk at a
        time while probing."""
        snap = pr.snapshot
        assert snap is not None
        size = len(snap.data)
        chunk = self.settings.snapshot_chunk_bytes
        window = self.settings.max_inflight_bytes
        while not pr.snapshot_all_sent:
            offset = pr.snapshot_next
            in_flight = offset - pr.snapshot_acked
            if in_flight and (pr.snapshot_probe or in_flight >= window):
                return
            end = min(offset + chunk, size)
            done = end == size
            self._send(InstallSnapshot(self.term, self.id, peer, snap.index, snap.term,
                                       snap.configuration, bytes(snap.data[offset:end]), offset,
                                       done))
            pr.snapshot_next = end
            pr.snapshot_all_sent = done

    def _resend_snapshot_from(self, peer: str, pr: Progress, offset: int,
                              now: float) -> None:
        """Go back to ``offset`` of the snapshot being streamed (what the follower says
        it holds: 0 if it lost its partial snapshot) and send one chunk from there."""
        if pr.snapshot is None:
            self._send_snapshot(peer, now)
            return
        pr.snapshot_next = pr.snapshot_acked = min(offset, len(pr.snapshot.data))
        pr.snapshot_probe = True
        pr.snapshot_all_sent = False
        pr.snapshot_sent_at = now
        self._event("resend-snapshot", peer=peer, index=pr.snapshot.index, offset=offset)
        self._send_snapshot_chunks(peer, pr)

    def _broadcast_append(self, now: float) -> None:
        for peer in self.progress:
            self._send_append(peer, now)

    def _broadcast_heartbeat(self, now: float, context: int) -> None:
        """``context`` 0: the periodic heartbeat (which also carries a new read round
        while reads wait, so a lost round delays them one heartbeat, not until their
        timeout); otherwise a read round of that number."""
        periodic = context == 0
        if periodic:
            self._heartbeat_deadline = now + self.settings.heartbeat_interval
            if self._reads:
                self._read_context += 1
                context = self._read_context
        if context and self.settings.lease_reads:
            # a lease counts from when the round that confirms it was sent (§6.4.1)
            self._read_round_sent.setdefault(context, now)
        for peer, pr in self.progress.items():
            if periodic and pr.state is ReplicationState.SNAPSHOT:
                if now - pr.snapshot_sent_at >= self.settings.election_timeout_max:
                    # Nothing acknowledged for an election timeout: a chunk or its
                    # answer was lost. Resend from what the follower acknowledged.
                    self._resend_snapshot_from(peer, pr, pr.snapshot_acked, now)
                if not context:
                    continue
            elif periodic and pr.state is ReplicationState.PROBE:
                pr.paused = False
                self._send_append(peer, now, allow_empty=True)
                if not context:
                    continue
            prev = pr.match
            prev_term = self.log.term_at(prev)
            if prev_term is None:
                prev, prev_term = self.log.snapshot_index, self.log.snapshot_term
            self._send(AppendEntries(self.term, self.id, peer, prev, prev_term, (),
                                     min(self.commit_index, prev), context))

    def _leading(self) -> bool:
        """Whether this node is still the leader, asked after a call that may have
        stepped it down. (``self.role is Role.LEADER`` there reads, to mypy, as the
        role checked before the call, and the compiled build trusts mypy's reading.)"""
        return self.role is Role.LEADER

    def _maybe_commit(self, now: float) -> None:
        progress, me = self.progress, self.id
        last = self.log.last_index
        n = quorum.majority_index(
            [last if v == me else (progress[v].match if v in progress else 0)
             for v in self.configuration.voters])
        if n <= self.commit_index:
            return
        # Figure 8: only an entry of the current term is committed by counting replicas.
        if self.log.term_at(n) != self.term and not self._bug("commit-prior-term"):
            return
        self._set_commit(n, now)

    def _set_commit(self, index: int, now: float) -> None:
        previous_config_index = self.committed_configuration[0]
        if self.uncommitted_bytes:
            committed = sum(len(e.data) for e in self.log.slice(self.commit_index + 1,
                                                                index + 1))
            self.uncommitted_bytes = max(self.uncommitted_bytes - committed, 0)
        self.commit_index = index
        self._event("commit", index=index)
        cfg_index, config = self.committed_configuration
        if cfg_index != previous_config_index:
            self._event("config-committed", index=cfg_index, voters=list(config.voters),
                        nonvoters=[s.id for s in config.servers if not s.voter])
        if self.role is not Role.LEADER:
            return
        if self._reads_waiting_for_commit and self.committed_in_term:
            waiting, self._reads_waiting_for_commit = self._reads_waiting_for_commit, []
            self._start_reads(waiting, now)  # they arrived together: one round
        if cfg_index != previous_config_index:
            # Tell everyone, removed servers included, that the change is committed;
            # then stop replicating to servers that are no longer members.
            self._broadcast_heartbeat(now, context=0)
            self._sync_progress_with_configuration(drop_removed=True)
            if not config.is_voter(self.id):
                # §4.2.2: a leader removed from the configuration steps down once the
                # removal is committed.
                self._event("step-down", reason="removed from the configuration")
                self._become_follower(self.term, None, now)

    # ------------------------------------------------------------------ snapshots

    def _handle_install_snapshot(self, m: InstallSnapshot, now: float) -> None:
        if self.role is not Role.FOLLOWER or self.leader_id != m.source:
            self._become_follower(m.term, m.source, now)
        self.last_leader_contact = now
        self._reset_election_timer(now)
        if m.last_included_index <= self.commit_index:
            self.pending_snapshot = None
            self._send(InstallSnapshotResponse(self.term, self.id, m.source, self.commit_index,
                                               m.last_included_index, m.offset,
                                               m.offset + len(m.data)))
            return
        pending = self.pending_snapshot
        if pending is None or (pending.index, pending.term, pending.leader_term) != (
                m.last_included_index, m.last_included_term, m.term):
            # The first chunk we see of this snapshot (not necessarily at offset 0: a
            # restarted follower answers 0, and the leader starts again from there).
            pending = self.pending_snapshot = PendingSnapshot(
                m.last_included_index, m.last_included_term, m.term, m.configuration)
        end = m.offset + len(m.data)
        if m.done:
            pending.total = end
        pending.add(m.offset, m.data, 2 * self.settings.max_inflight_bytes)
        if pending.total is None or pending.size < pending.total:
            self._answer_chunk(m, pending.size)
            return
        self.pending_snapshot = None
        problem = (self._snapshot_check(pending.buffer) if self._snapshot_check is not None
                   else None)
        if problem is not None:
            # Not what a leader sends (a forged or corrupted stream): refuse it whole and
            # answer nothing; a real leader's stream times out and starts again.
            self._event("snapshot-refused", index=m.last_included_index, source=m.source,
                        problem=problem)
            return
        snap = Snapshot(m.last_included_index, m.last_included_term, pending.configuration,
                        pending.buffer)
        self.log.compact(snap.index, snap.term)
        self.snapshot = snap
        self.commit_index = snap.index
        self.applied = snap.index
        self._rebuild_configs()
        self._snapshot_out = snap
        self._restore = snap
        if self._persist_from is not None and self._persist_from <= snap.index:
            self._persist_from = snap.index + 1
        self._event("snapshot-installed", index=snap.index, source=m.source)
        self._send(InstallSnapshotResponse(self.term, self.id, m.source, snap.index,
                                           snap.index, m.offset, pending.size))

    def _answer_chunk(self, m: InstallSnapshot, next_offset: int) -> None:
        self._send(InstallSnapshotResponse(self.term, self.id, m.source, self.commit_index,
                                           m.last_included_index, m.offset, next_offset))

    def _handle_snapshot_response(self, m: InstallSnapshotResponse, now: float) -> None:
        if self.role is not Role.LEADER:
            return
        pr = self.progress.get(m.source)
        if pr is None:
            return
        pr.recent_active = True
        pr.last_response = now
        match = min(m.match_index, self.log.last_index)  # as for AppendEntriesResponse
        if match > pr.match:
            pr.match = match
            self._maybe_commit(now)
        if not self._leading():  # a committed configuration without it stepped it down
            return
        installed = m.match_index >= m.snapshot_index
        if pr.state is ReplicationState.SNAPSHOT and not installed:
            if m.snapshot_index == pr.snapshot_index:
                self._on_chunk_answer(m, pr, now)
            return
        if pr.state is not ReplicationState.SNAPSHOT and not installed:
            return  # a late answer to a chunk of a stream that has ended
        if pr.state is ReplicationState.SNAPSHOT and pr.match < pr.snapshot_index:
            return  # it installed an older snapshot; the current stream goes on
        pr.snapshot = None
        pr.next = pr.match + 1
        pr.state = ReplicationState.PROBE
        pr.paused = False
        self._send_append(m.source, now, allow_empty=True)

    def _on_chunk_answer(self, m: InstallSnapshotResponse, pr: Progress, now: float) -> None:
        """Move the follower's snapshot window on, or go back to what it holds.

        Chunks and answers may be lost or reordered, so an answer holding less than was
        acknowledged before is usually stale, and a missing chunk is resent only when
        nothing progresses for an election timeout (see _broadcast_heartbeat). The one
        exception: a follower holding nothing (``next_offset`` 0) after it acknowledged
        bytes lost its partial snapshot (it restarted), and the leader starts over."""
        assert pr.snapshot is not None
        held = min(m.next_offset, len(pr.snapshot.data))
        if held > pr.snapshot_acked:
            pr.snapshot_acked = held
            pr.snapshot_sent_at = now
            pr.snapshot_probe = False
            if held > pr.snapshot_next:
                # It kept more of this snapshot from before a restarted stream: go on
                # from there (a resumed transfer).
                pr.snapshot_next = held
        elif held == 0 and pr.snapshot_acked > 0:
            self._resend_snapshot_from(m.source, pr, 0, now)
            return
        self._send_snapshot_chunks(m.source, pr)

    # ------------------------------------------------------------------ reads

    def _start_reads(self, request_ids: list[int], now: float) -> None:
        voters = self.configuration.voters
        if voters == (self.id,):
            for request_id in request_ids:
                self._read_states.append(ReadState(request_id, self.commit_index))
            return
        # Batch (hashicorp/raft's VerifyLeader): while a round is in flight, reads wait
        # for the next one together; it is sent when the one in flight is answered.
        in_flight = self._round_in_flight()
        context = self._read_context + 1
        for request_id in request_ids:
            self._reads.append(PendingRead(request_id, self.commit_index, context,
                                           {self.id}))
        if not in_flight:
            self._read_context = context
            self._broadcast_heartbeat(now, context=context)

    def _round_in_flight(self) -> bool:
        """Some read waits on a round already sent (the others wait for the next)."""
        return any(read.context <= self._read_context for read in self._reads)

    def _ack_reads(self, peer: str, context: int, now: float) -> None:
        """An answer to round ``context`` confirms every read that arrived before that
        round was sent (dissertation §6.4), whichever round the read started."""
        for read in self._reads:
            if read.context <= context:
                read.acks.add(peer)
        voters = self.configuration.voters
        confirmed = 0
        for position, read in enumerate(self._reads):
            if quorum.has_quorum(voters, read.acks):
                confirmed = position + 1
        for read in self._reads[:confirmed]:
            self._read_states.append(ReadState(read.request_id, read.index))
            sent = self._read_round_sent.get(read.context)
            if sent is not None:
                self._lease_until = max(self._lease_until,
                                        sent + self.settings.election_timeout_min)
        if confirmed and self._read_round_sent:
            done = self._reads[confirmed - 1].context
            for round_ in [r for r in self._read_round_sent if r <= done]:
                del self._read_round_sent[round_]
        del self._reads[:confirmed]
        if self._reads and not self._round_in_flight():
            self._read_context += 1  # the batch that waited for the last round
            self._broadcast_heartbeat(now, context=self._read_context)

    # ------------------------------------------------------------------ log helpers

    def _append_new(self, kind: EntryKind, data: bytes) -> Entry:
        entry = Entry(self.term, self.log.last_index + 1, kind, data)
        self._append_local(entry)
        return entry

    def _append_local(self, entry: Entry) -> None:
        self.log.append(entry)
        if self._persist_from is None or entry.index < self._persist_from:
            self._persist_from = entry.index
        if entry.kind is EntryKind.CONFIGURATION:
            self._configuration_appended(entry)

    def _configuration_appended(self, entry: Entry) -> None:
        """A CONFIGURATION entry joined the log: it takes effect at once (§4.1)."""
        self._configs.append((entry.index, Configuration.decode(entry.data)))
        self._event("config", index=entry.index,
                    voters=list(self._configs[-1][1].voters),
                    nonvoters=[s.id for s in self._configs[-1][1].servers if not s.voter])

    def _truncate_from(self, index: int) -> None:
        self._event("truncate", index=index)
        self.log.truncate_from(index)
        while len(self._configs) > 1 and self._configs[-1][0] >= index:
            self._configs.pop()

    def _rebuild_configs(self) -> None:
        base = decode_indexed(self.snapshot.configuration) if self.snapshot else (0, None)
        self._configs = [(base[0], base[1] or Configuration())]
        for entry in self.log.slice(self.log.first_index, self.log.last_index + 1):
            if entry.kind is EntryKind.CONFIGURATION:
                self._configs.append((entry.index, Configuration.decode(entry.data)))

    def _sync_progress_with_configuration(self, *, drop_removed: bool,
                                          newcomers_active: bool = False) -> None:
        """Track every member of the latest configuration. A removed server is kept
        until its removal commits, so it receives the entry that removes it (as
        hashicorp/raft does) and learns it is no longer a member. A server a change
        just added counts as recently active (``newcomers_active``): it has had no
        chance to answer, and CheckQuorum must not depose the leader for that (etcd's
        TestAddNodeCheckQuorum)."""
        if self.role is not Role.LEADER:
            return
        ids = self.configuration.ids
        for peer in ids:
            if peer != self.id and peer not in self.progress:
                self.progress[peer] = Progress(next=self.log.last_index + 1,
                                               recent_active=newcomers_active)
        if drop_removed:
            for peer in [p for p in self.progress if p not in ids]:
                del self.progress[peer]

    # ------------------------------------------------------------------ output

    def _bug(self, name: str) -> bool:
        return name in self.settings.bugs

    def _send(self, m: Message) -> None:
        self._messages.append(m)

    def _event(self, kind: str, **fields: object) -> None:
        self._events.append(Event(kind, fields))

    def _ready(self) -> Ready:
        # The hottest function of a simulation: one call per input, so it builds the
        # Ready in one go and allocates only what changed.
        hard_state = None
        persisted = self._persisted
        if (self.term != persisted.term or self.voted_for != persisted.voted_for
                or self.commit_index != persisted.commit):
            hard_state = self._persisted = HardState(self.term, self.voted_for,
                                                     self.commit_index)
            if self._bug("forget-vote"):
                hard_state = HardState(hard_state.term, None, hard_state.commit)
        entries: tuple[Entry, ...] = ()
        if self._persist_from is not None:
            entries = tuple(self.log.slice(self._persist_from, self.log.last_index + 1))
            self._persist_from = None
        committed: tuple[Entry, ...] = ()
        if self.commit_index > self.applied:
            committed = tuple(self.log.slice(self.applied + 1, self.commit_index + 1))
            self.applied = self.commit_index
        messages: Sequence[Message] = self._messages
        if messages:
            self._messages = []
        else:
            messages = ()
        events: Sequence[Event] = self._events
        if events:
            self._events = []
        else:
            events = ()
        read_states: tuple[ReadState, ...] = ()
        if self._read_states:
            read_states, self._read_states = tuple(self._read_states), []
        snapshot, restore = self._snapshot_out, self._restore
        if snapshot is not None or restore is not None:
            self._snapshot_out = self._restore = None
        return Ready(hard_state, entries, snapshot, messages, restore, committed, read_states,
                     events, None, self.deadline())


def bootstrap_state(configuration: Configuration) -> tuple[HardState, list[Entry]]:
    """The durable state every founding member starts from (hashicorp/raft's
    BootstrapCluster): term 1 and the configuration as entry 1, already committed
    because every founding member holds it identically."""
    entry = Entry(1, 1, EntryKind.CONFIGURATION, configuration.encode())
    return HardState(term=1, voted_for=None, commit=1), [entry]
