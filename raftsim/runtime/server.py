"""An asyncio Raft server: one core node, its storage, its state machine, its timers.

The server is the same in both worlds: it reads the time from its event loop (virtual in
the simulator, monotonic in a live process) and sends bytes through a ``Transport`` (the
simulated network, or TCP). It never decides anything Raft decides; it carries out the
core's ``Ready`` in the order that keeps Raft safe: persist, send, apply, answer.

A save that fails stops the server at once (fail-stop, as etcd and hashicorp/raft panic):
the core marked the Ready's state persisted when it built it, so nothing the node says
from then on can be trusted to match the disk. The server drops its node and every
volatile thing like a crash, emits a ``storage-failure`` trace event naming the file,
the operation and the errno, fails what is pending, and stays stopped until
:meth:`Server.start` recovers it from what the disk really holds.

A save may take time (a slow disk in the simulator: :attr:`Server.disk_seconds`). The
rest of that Ready -- its sends, applies and answers -- then waits until the save is
done, and every later Ready's rest waits behind it in order, so nothing leaves the
server before the state it depends on is durable and messages keep their order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from raftsim.core.configuration import ConfigChange, Configuration
from raftsim.core.errors import (
    ChangeNotAllowedYet,
    NotLeader,
    ProposalDropped,
    UncommittedLimitReached,
)
from raftsim.core.messages import Entry, EntryKind, HardState, Message, Snapshot
from raftsim.core.node import RaftNode
from raftsim.core.ready import Ready, Role
from raftsim.core.settings import NodeSettings
from raftsim.runtime.autopilot import Autopilot
from raftsim.runtime.errors import (
    CallInterrupted,
    LeadershipLost,
    NoClusterLeader,
    Overloaded,
    RequestTimeout,
    ServerStopped,
)
from raftsim.runtime.kv import (
    KVItem,
    KVStore,
    check_command,
    checked_command,
    decode_snapshot,
    encode_batch,
    encode_snapshot,
)
from raftsim.runtime.transports import (
    Connection,
    ConnectionTransport,
    GatheringTransport,
    Transport,
)
from raftsim.storage.base import PowerLoss, Storage, StorageError
from raftsim.wire import (
    Frame,
    Notification,
    Request,
    Response,
    RoundEncoder,
    WireError,
    decode_frame,
    decode_message,
    decode_message_bytes,
    encode_frame,
    encode_message,
)
from raftsim.wire.payload import snapshot_data_problem

#: observer(server_id, term, kind, fields): every state change worth tracing
Observer = Callable[[str, int, str, dict[str, Any]], None]
RpcHandler = Callable[[str, list[Any]], Awaitable[Any]]
#: told once how a submitted command ended: the state machine's result, or why it failed
Completion = Callable[[bool | Exception], None]
#: told when a save failed and the server stopped (the live agent exits on it)
StorageFailureHandler = Callable[[Exception], None]

#: group commit puts at most this many command bytes in one log entry, so that a full
#: AppendEntries (max_entries_per_message entries) stays far below the wire's frame limit
MAX_BATCH_BYTES = 64 * 1024
#: with group commit, one flush applies committed entries up to about this many bytes and
#: leaves the rest to the next: in between, the event loop sends what the completions
#: just proposed, so the leader's applying overlaps the followers' appending
APPLY_BUDGET = 64 * 1024
#: with group commit, a hard state that differs from the stored one only in its commit
#: index is written at most this often (seconds): Raft needs term and vote durable, not
#: the commit index (a restart re-learns it from the leader), and rewriting the hard
#: state file on every commit costs more than the log writes themselves
COMMIT_SAVE_INTERVAL = 1.0
#: with group commit, a leader holds at most this many submitted commands that are not
#: yet answered (queued, proposed, or committed and waiting to be applied); past it,
#: ``submit`` refuses with Overloaded (HTTP: 429) instead of queueing without end
#: (hashicorp/raft blocks its callers on a bounded apply channel; etcd refuses past
#: MaxUncommittedEntriesSize). The queue's length no longer decides whether the leader
#: keeps leading: a flush proposes and applies in bounded slices (MAX_ENTRIES_PER_FLUSH,
#: FLUSH_FRACTION) and yields in between, however many commands wait. What the bound
#: keeps in check is memory (a waiting command costs a few hundred bytes of objects) and
#: waiting time: 65,536 commands are one to two seconds of a leader's work at one entry
#: per command on a small machine, well within a write's 5 s timeout, and a fraction of
#: a second batched. A bound far below the writes clients keep in flight costs more than
#: it saves: every answer lets one more in and refuses the next (at 32,000 in flight and
#: a bound of 16,384, a refused attempt per completed write cost a third of the batched
#: throughput).
MAX_PENDING_COMMANDS = 65_536
#: with group commit, ``submit`` also refuses while this many committed entries wait to
#: be applied: the state machine is behind, and more writes would only wait longer
MAX_APPLY_BACKLOG = 16_384
#: a flush works for at most this fraction of the heartbeat interval, then yields to the
#: event loop (heartbeats, acknowledgements, other clients) and goes on in a later turn
FLUSH_FRACTION = 0.25
#: a flush proposes at most this many entries, and applies at most this many: a bound
#: that holds on virtual time too, where no time passes within a turn (deterministic)
MAX_ENTRIES_PER_FLUSH = 1024
#: how many entries are proposed or applied between two looks at the clock
_CLOCK_STRIDE = 64
#: an entry costs at least this much of a flush's APPLY_BUDGET, so that a flush applies
#: at most MAX_ENTRIES_PER_FLUSH small entries (one entry per command)
_MIN_APPLY_COST = APPLY_BUDGET // MAX_ENTRIES_PER_FLUSH


class RemoteError(Exception):
    """A forwarded RPC that the remote server answered with an error."""


@dataclass(slots=True)
class _Call:
    """A request in flight: who it went to, on which connection (None: no connections)."""

    target: str
    connection: Any  # (mypyc's dataclasses do not take ``object`` here)
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Pending:
    term: int
    future: asyncio.Future[bool]


class _StageFailed(Exception):
    """Writing a snapshot's file failed (a storage failure, not a serializing one)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


_COMMIT_TIMEOUT = "timed out waiting for the entry to commit"


def _waiting(group: tuple[int, Completion | list[Completion], Any]) -> list[Completion]:
    """The completions of a ``Server._submitted`` entry."""
    waiting = group[1]
    return waiting if isinstance(waiting, list) else [waiting]


def _expire(fut: asyncio.Future[Any], message: str) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout(message))


class Server:
    def __init__(
        self,
        node_id: str,
        *,
        settings: NodeSettings,
        rng: random.Random,
        storage: Storage,
        transport: Transport,
        loop: asyncio.AbstractEventLoop,
        observer: Observer | None = None,
        snapshot_threshold: int = 0,
        group_commit: bool = False,
        ack_after_failed_save: bool = False,
        background_snapshots: bool = False,
        max_commands_per_entry: int = 0,
        max_pending_commands: int = MAX_PENDING_COMMANDS,
    ) -> None:
        self.id = node_id
        self.settings = settings
        self.rng = rng
        self.storage = storage
        self.transport = transport
        #: the transport, if it gathers sends (a flush's messages leave in one write each)
        self._gatherer = transport if isinstance(transport, GatheringTransport) else None
        self.loop = loop
        self.observer = observer
        #: compact the log once this many entries were applied past the last snapshot
        self.snapshot_threshold = snapshot_threshold
        self.rpc_handlers: dict[str, RpcHandler] = {}
        self.node: RaftNode | None = None
        self.kv = KVStore()
        self.paused = False
        self._held: list[tuple[str, bytes]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = float("inf")
        self._timer_due_while_paused = False
        self._proposals: dict[int, _Pending] = {}
        self._reads: dict[int, asyncio.Future[int]] = {}
        self._read_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._next_read_id = 0
        self._rpc_id = 0
        self._rpcs: dict[int, _Call] = {}
        #: responses dropped because they came from another peer or connection than
        #: their call went to (or for no call at all)
        self.stray_responses = 0
        #: set and replaced whenever commit, role or leader changes: waiters re-check
        self._changed = asyncio.Event()
        self.apply_results: dict[int, bool] = {}
        #: group commit (live servers): the Readies of one event-loop turn are persisted
        #: with one storage write (one fsync), then acted on in order; commands submitted
        #: in that turn become one log entry
        self.group_commit = group_commit
        self._batch: list[Ready] = []
        #: commands submitted and not yet proposed: (bytes, completion, decoded command)
        self._queued: deque[tuple[bytes, Completion, list[Any]]] = deque()
        #: index -> (term, completions, decoded commands) of the entries proposed for them;
        #: for an entry of one command (one entry per command), the completion and the
        #: decoded command themselves, not lists of one (see _waiting)
        self._submitted: dict[int, tuple[int, Completion | list[Completion], Any]] = {}
        #: group commit puts at most this many commands in one entry (0: as many as
        #: MAX_BATCH_BYTES allows; 1: one entry per command, as hashicorp/raft does)
        self.max_commands_per_entry = max_commands_per_entry
        #: submitted commands not yet answered, at most (see MAX_PENDING_COMMANDS)
        self.max_pending_commands = max_pending_commands
        #: how many submitted commands are not yet answered: queued or in _submitted
        self._pending_commands = 0
        #: when the running flush must yield to the event loop (loop time)
        self._flush_deadline = float("inf")
        #: (deadline, future) of writes waiting to commit, in deadline order, and the one
        #: timer that expires them (see _expire_at)
        self._expiries: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._flushing = False
        self._saved_hard_state: HardState | None = None
        #: committed entries not yet applied (group commit applies them in slices)
        self._backlog: deque[Entry] = deque()
        self._apply_budget = 0
        self._commit_saved_at = float("-inf")
        #: the save error that stopped this server (None while running or after a crash)
        self.storage_failure: Exception | None = None
        self.on_storage_failure: StorageFailureHandler | None = None
        #: a runtime bug switch for the invariant checker's tests: swallow a failed save
        #: and carry on, acknowledging what the disk does not hold (the zombie follower);
        #: the fuzzer's ``ack-after-failed-fsync`` switch (raftsim/core/bugs.py)
        self.ack_after_failed_save = (ack_after_failed_save
                                      or "ack-after-failed-fsync" in settings.bugs)
        #: how long the last save took, in seconds of this server's clock (a slow
        #: simulated disk says; None: saves are instant)
        self.disk_seconds: Callable[[], float] | None = None
        #: Readies saved but not yet acted on (the disk is still busy with them), each
        #: with the time its save is done, in order
        self._after_save: deque[tuple[float, Ready]] = deque()
        self._disk_busy_until = float("-inf")
        self._disk_timer: asyncio.TimerHandle | None = None
        self._disk_due_while_paused = False
        #: live servers (with group commit): serialize the state machine for a snapshot,
        #: and restore one, in a worker thread, so heartbeats keep flowing meanwhile. The
        #: simulator does both at once: they cost no virtual time and stay deterministic.
        if background_snapshots and not group_commit:
            raise ValueError("background_snapshots needs group_commit")
        self.background_snapshots = background_snapshots
        #: bumped by every crash and every restore: a background restore from before it
        #: is discarded
        self._restore_generation = 0
        self._snapshotting = False
        #: the index of a snapshot being restored in the background; committed entries
        #: after it wait in the backlog until it is done
        self._restoring: int | None = None
        #: promotes caught-up non-voters while this server leads
        self.autopilot = Autopilot(self)
        #: (index, term) of snapshots whose file a worker thread wrote (staged) for the
        #: save that stores them, which then only renames it (background_snapshots)
        self._staged: set[tuple[int, int]] = set()
        #: the snapshot being staged for a Ready that waits in the batch, with every
        #: Ready after it, until its file is durable: nothing that acknowledges it
        #: (the InstallSnapshotResponse, a hard state committing it) may leave before
        self._staging: Snapshot | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self.node is not None

    def start(self) -> None:
        """Build the core node from storage (a restart recovers term, vote, log)."""
        if self.node is not None:
            raise RuntimeError(f"server {self.id} is already running")
        state = self.storage.load()
        self.storage_failure = None
        self._saved_hard_state = None  # what a failed save left is only known from disk
        self.kv = KVStore()
        if state.snapshot is not None:
            self.kv.restore(state.snapshot.data)
        self.node = RaftNode(self.id, self.settings, self.rng, hard_state=state.hard_state,
                             snapshot=state.snapshot, entries=state.entries,
                             now=self.loop.time(),
                             # live servers check an installed snapshot's data in the
                             # worker thread that writes its file (_check_and_stage):
                             # decoding 200 MiB on the loop would stall heartbeats
                             snapshot_check=(None if self.background_snapshots
                                             else snapshot_data_problem))
        self.paused = False
        self._emit("start", {"last_index": self.node.log.last_index,
                             "last_term": self.node.log.last_term,
                             "commit": self.node.commit_index})
        # Entries up to the persisted commit index are re-applied at once.
        self._process(self.node.on_timeout(self.loop.time()))

    def crash(self) -> None:
        """Lose all volatile state at once (storage is kept); pending requests fail."""
        if self.node is None:
            return
        self._emit("crash", {})
        self._halt()

    def _halt(self) -> None:
        """Drop the node and every volatile thing; fail what is pending."""
        self.node = None
        self._restore_generation += 1
        self._snapshotting = False
        self._restoring = None
        self.autopilot.on_role(False)
        self._staged.clear()
        self._staging = None
        self.paused = False
        self._held.clear()
        self._batch.clear()
        self._after_save.clear()
        self._cancel_disk_timer()
        self._disk_busy_until = float("-inf")
        self._disk_due_while_paused = False
        self._backlog.clear()
        queued, self._queued = self._queued, deque()
        self._pending_commands -= len(queued)
        for _, done, _ in queued:
            done(ServerStopped())
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_when = None, float("inf")
        self._fail_all(ServerStopped())
        for call in self._rpcs.values():
            if not call.future.done():
                call.future.set_exception(ServerStopped())
        self._rpcs.clear()
        self._signal_change()

    def pause(self) -> None:
        """Freeze the process: nothing is handled until resume (like SIGSTOP)."""
        if self.node is not None:
            self.paused = True
            self._emit("pause", {})

    def resume(self) -> None:
        if self.node is None or not self.paused:
            return
        self.paused = False
        self._emit("resume", {})
        held, self._held = self._held, []
        for source, data in held:
            self.receive(source, data)
        if self._disk_due_while_paused and self.node is not None:
            self._disk_due_while_paused = False
            self._disk_done()
        if self._timer_due_while_paused and self.node is not None:
            self._timer_due_while_paused = False
            self._process(self.node.on_timeout(self.loop.time()))

    # ------------------------------------------------------------------ inbound

    def receive(self, source: str, data: bytes) -> None:
        """Bytes of one whole frame from ``source`` (the simulated network's unit)."""
        if self.node is None:
            return
        if self.paused:
            self._held.append((source, data))
            return
        try:
            message = decode_message_bytes(data)
        except WireError:
            # Not a Raft message: an RPC request or response, or garbage.
            try:
                frame = decode_frame(data)
            except WireError as exc:
                self._emit("bad-frame", {"source": source, "error": str(exc)})
                return
            self.receive_frame(source, frame)
            return
        self._process(self.node.step(message, self.loop.time()))

    def receive_message(self, source: str, message: Message) -> None:
        """A Raft message that a transport already decoded from ``source``."""
        node = self.node
        if node is None:
            return
        if self.paused:
            self._held.append((source, encode_message(message)))
            return
        self._process(node.step(message, self.loop.time()))

    def receive_frame(self, source: str, frame: Frame, connection: object = None) -> None:
        """A frame from ``source``, on ``connection`` (None where there are none)."""
        node = self.node
        if node is None:
            return
        if isinstance(frame, Notification):
            try:
                message = decode_message(frame)
            except WireError as exc:
                self._emit("bad-frame", {"source": source, "error": str(exc)})
                return
            self._process(node.step(message, self.loop.time()))
        elif isinstance(frame, Request):
            self.loop.create_task(self._serve_rpc(source, frame, connection))
        elif isinstance(frame, Response):
            call = self._rpcs.get(frame.msgid)
            if call is None or call.target != source or call.connection is not connection:
                self.stray_responses += 1
                self._emit("stray-response", {"source": source, "msgid": frame.msgid})
                return
            del self._rpcs[frame.msgid]
            if not call.future.done():
                if frame.error is not None:
                    call.future.set_exception(RemoteError(str(frame.error)))
                else:
                    call.future.set_result(frame.result)

    def connection_closed(self, connection: object) -> None:
        """The transport closed ``connection``: its calls will get no answer."""
        for msgid, call in list(self._rpcs.items()):
            if call.connection is connection:
                del self._rpcs[msgid]
                if not call.future.done():
                    call.future.set_exception(CallInterrupted(
                        f"the connection to {call.target} closed"))

    async def _serve_rpc(self, source: str, request: Request,
                         connection: object = None) -> None:
        handler = self.rpc_handlers.get(request.method)
        error: Any = None
        result: Any = None
        if handler is None:
            error = f"unknown method {request.method!r}"
        else:
            try:
                result = await handler(source, request.params)
            except Exception as exc:  # the caller gets the message, we keep serving
                error = str(exc) or type(exc).__name__
        if self.node is None:
            return
        answer = encode_frame(Response(request.msgid, error, result))
        if isinstance(connection, Connection):
            connection.send(answer)  # on its connection, or nowhere if that one closed
        else:
            self.transport.send(source, answer)

    # ------------------------------------------------------------------ client API

    def _require_node(self) -> RaftNode:
        if self.node is None:
            raise ServerStopped()
        return self.node

    async def propose(self, command: bytes, *, timeout: float = 5.0) -> bool:
        """Append ``command`` as leader and wait until it is committed and applied.
        Returns the state machine's result (False: a compare-and-set that failed).
        Raises CommandError for bytes that are no key-value command."""
        if self.group_commit:
            return await self._await_submitted(command, timeout)
        node = self._require_node()
        check_command(command)
        ready = node.propose(command, self.loop.time())
        assert ready.proposed is not None
        return await self._await_entry(ready, timeout)

    async def change_configuration(self, change: ConfigChange, *,
                                   timeout: float = 5.0) -> int:
        """Append a membership change as leader, waiting first (bounded) while another
        change is uncommitted or this term has nothing committed; returns its index."""
        deadline = self.loop.time() + timeout
        while True:
            node = self._require_node()
            try:
                ready = node.change_configuration(change, self.loop.time())
                break
            except ChangeNotAllowedYet as exc:
                if not await self._wait_changed(deadline):
                    raise RequestTimeout(
                        f"timed out waiting to change the configuration: {exc}") from exc
        assert ready.proposed is not None
        index = ready.proposed[0]
        await self._await_entry(ready, max(deadline - self.loop.time(), 0.0))
        return index

    async def _await_entry(self, ready: Ready, timeout: float) -> bool:
        assert ready.proposed is not None
        index, term = ready.proposed
        fut: asyncio.Future[bool] = self.loop.create_future()
        self._proposals[index] = _Pending(term, fut)
        self._process(ready)
        # A plain timer instead of wait_for(shield(...)): this is every client write's
        # path, and the future stays registered (a late commit still resolves it).
        timer = self.loop.call_later(timeout, _expire, fut,
                                     "timed out waiting for the entry to commit")
        try:
            return await fut
        finally:
            timer.cancel()
            if self._proposals.get(index, None) is not None and fut.done():
                del self._proposals[index]

    def submit(self, command: bytes, done: Completion) -> None:
        """Group commit: queue ``command`` for the entry this event-loop turn ends with.
        ``done`` is called once, with the state machine's result once the entry is
        applied, or with the exception that failed it (NotLeader if leadership was lost
        before the entry was appended); it runs inside the server's processing, so it
        must not raise. Raises NotLeader or ProposalDropped at once when this server
        cannot take proposals now, Overloaded when it already holds
        ``max_pending_commands`` unanswered commands or MAX_APPLY_BACKLOG entries wait to
        be applied (retry after some complete), CommandError if ``command`` is no
        key-value command (the followers would refuse it, and it could not share an
        entry)."""
        node = self.node
        if (node is None or node.role is not Role.LEADER or node.transfer_target is not None
                or not self.group_commit):
            self._refuse(node)
        if self._pending_commands >= self.max_pending_commands:
            raise Overloaded(f"{self._pending_commands} writes are waiting to commit and "
                             f"apply, the limit is {self.max_pending_commands}")
        if len(self._backlog) >= MAX_APPLY_BACKLOG:
            raise Overloaded(f"{len(self._backlog)} committed entries are waiting to be "
                             f"applied, the limit is {MAX_APPLY_BACKLOG}")
        self._queued.append((command, done, checked_command(command)))
        self._pending_commands += 1
        self._schedule_flush()

    def _refuse(self, node: RaftNode | None) -> NoReturn:
        if not self.group_commit:
            raise RuntimeError("submit needs a server built with group_commit=True")
        if node is None:
            raise ServerStopped()
        if node.role is not Role.LEADER:
            raise NotLeader(node.leader_id)
        raise ProposalDropped("leadership transfer in progress")

    async def _await_submitted(self, command: bytes, timeout: float) -> bool:
        return await self.submit_waiting(command, timeout)

    def submit_waiting(self, command: bytes, timeout: float, *,
                       then: Callable[[asyncio.Future[bool]], None] | None = None,
                       ) -> asyncio.Future[bool]:
        """``submit`` for a caller that wants a future rather than a callback: it
        resolves with the state machine's result, or fails with what failed the command,
        or with RequestTimeout after ``timeout`` seconds. ``then(future)``, if given, is
        called at once when the command resolves it, inside the server's processing (it
        must not raise): the HTTP port's shortcut answers from it, without waiting a
        loop turn for the future's callbacks. Raises at once as ``submit`` does."""
        fut: asyncio.Future[bool] = self.loop.create_future()

        def done(outcome: bool | Exception) -> None:
            if not fut.done():
                if isinstance(outcome, Exception):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
                if then is not None:
                    then(fut)

        self.submit(command, done)
        self._expire_at(self.loop.time() + timeout, fut)
        return fut

    def _expire_at(self, deadline: float, fut: asyncio.Future[bool]) -> None:
        """Fail ``fut`` with RequestTimeout at ``deadline`` unless it is done by then.
        Writes waiting with the same timeout expire in the order they were submitted,
        so one timer for all of them does (not one per write: a timer handle, a heap
        push and a cancel per HTTP write); one that would expire before the last in
        line gets a timer of its own."""
        expiries = self._expiries
        if expiries and deadline < expiries[-1][0]:
            self.loop.call_at(deadline, _expire, fut, _COMMIT_TIMEOUT)
            return
        expiries.append((deadline, fut))
        if self._expiry_timer is None:
            self._expiry_timer = self.loop.call_at(deadline, self._expire_due)

    def _expire_due(self) -> None:
        self._expiry_timer = None
        expiries = self._expiries
        now = self.loop.time()
        while expiries and (expiries[0][0] <= now or expiries[0][1].done()):
            _, fut = expiries.popleft()
            if not fut.done():
                fut.set_exception(RequestTimeout(_COMMIT_TIMEOUT))
        if expiries:
            self._expiry_timer = self.loop.call_at(expiries[0][0], self._expire_due)

    async def read_barrier(self, *, timeout: float = 5.0) -> int:
        """ReadIndex (§6.4): once this returns, reading local state is linearizable.
        Returns the index the read is served at."""
        node = self._require_node()
        self._next_read_id += 1
        request_id = self._next_read_id
        fut: asyncio.Future[int] = self.loop.create_future()
        self._reads[request_id] = fut
        self._process(node.read_index(request_id, self.loop.time()))
        try:
            index = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self._reads.pop(request_id, None)
            raise RequestTimeout("timed out confirming leadership for a read") from None
        if self.kv.applied_index < index:
            waiter: asyncio.Future[None] = self.loop.create_future()
            self._read_waiters.append((index, waiter))
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                raise RequestTimeout(
                    f"timed out waiting for the state machine to apply index {index} "
                    f"(applied: {self.kv.applied_index})") from None
        return index

    async def leader_barrier(self, *, timeout: float = 5.0) -> None:
        """Wait until this leader has committed an entry of its own term: only then is
        its commit index (and so its committed configuration) at least every index a
        previous leader committed (§6.4; hashicorp/raft's leader barrier). Raises
        NotLeader when this server does not lead (the caller finds the leader)."""
        deadline = self.loop.time() + timeout
        while True:
            node = self._require_node()
            if node.role is not Role.LEADER:
                raise NotLeader(node.leader_id)
            if node.committed_in_term:
                return
            if not await self._wait_changed(deadline):
                raise RequestTimeout("timed out waiting for the leader to commit an entry "
                                     "of its term")

    def campaign(self) -> None:
        """Start an election now (a tool's or a test's "campaign now")."""
        self._process(self._require_node().campaign(self.loop.time()))

    def heartbeat(self) -> None:
        """Send a heartbeat round now (leader only; a tool's or a test's "beat now")."""
        self._process(self._require_node().heartbeat(self.loop.time()))

    def report_unreachable(self, peer: str) -> None:
        """The transport could not reach ``peer``: stop streaming entries to it."""
        self._process(self._require_node().report_unreachable(peer, self.loop.time()))

    def cancel_transfer(self) -> None:
        """Give up a pending leadership transfer; writes are taken again at once."""
        self._process(self._require_node().cancel_transfer(self.loop.time()))

    async def transfer_leadership(self, target: str | None, *, timeout: float = 5.0) -> str:
        """Hand leadership over; returns the id of the new leader."""
        node = self._require_node()
        if target == self.id and node.role is Role.LEADER:
            # already the leader: this cancels a pending transfer (etcd's transfer back)
            self._process(node.transfer_leadership(target, self.loop.time()))
            return self.id
        self._process(node.transfer_leadership(target, self.loop.time()))
        goal = node.transfer_target
        deadline = self.loop.time() + timeout
        while True:
            current = self.node
            if current is None:
                raise ServerStopped()
            if current.role is not Role.LEADER:
                if current.leader_id is not None:
                    return current.leader_id
            elif current.transfer_target != goal and goal is not None:
                raise RequestTimeout(f"leadership transfer to {goal} did not complete")
            if not await self._wait_changed(deadline):
                raise RequestTimeout("timed out waiting for leadership transfer")

    async def call(self, target: str, method: str, params: list[Any], *,
                   timeout: float = 5.0, while_leader: bool = False) -> Any:
        """A msgpack-rpc request to another server (used to forward to the leader).
        Over a connection-oriented transport, fails at once with CallInterrupted when
        there is no connection to ``target`` (the request was not sent) and as soon as
        the connection it went on closes (it may or may not have been carried out).
        ``while_leader``: ``target`` is the leader; give up (CallInterrupted) as soon as
        this server no longer names it leader (it stopped hearing from it for an
        election timeout, or another leader was elected)."""
        self._require_node()
        connection: Connection | None = None
        transport = self.transport
        if isinstance(transport, ConnectionTransport):
            connection = transport.connection_to(target)
            if connection is None:
                raise CallInterrupted(f"not connected to {target}", sent=False)
        self._rpc_id += 1
        msgid = self._rpc_id
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._rpcs[msgid] = _Call(target, connection, fut)
        data = encode_frame(Request(msgid, method, params))
        if connection is not None:
            connection.send(data)
        else:
            transport.send(target, data)
        try:
            if while_leader:
                return await self._await_while_leader(fut, target, timeout)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RequestTimeout(f"no answer from {target} to {method}") from None
        finally:
            self._rpcs.pop(msgid, None)

    async def _await_while_leader(self, fut: asyncio.Future[Any], leader: str,
                                  timeout: float) -> Any:
        """Wait for ``fut`` while this server names ``leader`` leader; once it does not,
        for a grace of ``election_timeout_min`` more (a leader that handed leadership on,
        or answered just before it was deposed, still answers on a live connection)."""
        deadline = self.loop.time() + timeout
        while not fut.done():
            node = self._require_node()
            if node.leader_id != leader:
                grace = min(deadline, self.loop.time() + self.settings.election_timeout_min)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut),
                                                  max(grace - self.loop.time(), 0.0))
                except TimeoutError:
                    if grace >= deadline:
                        raise
                    raise CallInterrupted(f"{leader} is no longer the leader") from None
            changed = self._changed
            waiter = self.loop.create_task(changed.wait())
            try:
                remaining = deadline - self.loop.time()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait([fut, waiter], timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        return fut.result()

    def connected_to(self, target: str) -> bool:
        """Whether a call to ``target`` can be sent now (always, without connections)."""
        transport = self.transport
        if isinstance(transport, ConnectionTransport):
            return transport.connection_to(target) is not None
        return True

    async def wait_for_leader(self, hold: float) -> str:
        """The leader's id, waiting up to ``hold`` seconds for one to be known."""
        deadline = self.loop.time() + hold
        while True:
            node = self._require_node()
            if node.leader_id is not None:
                return node.leader_id
            if not await self._wait_changed(deadline):
                raise NoClusterLeader()

    async def _wait_changed(self, deadline: float) -> bool:
        remaining = deadline - self.loop.time()
        if remaining <= 0:
            return False
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ state

    @property
    def role(self) -> Role | None:
        return self.node.role if self.node else None

    @property
    def pending_commands(self) -> int:
        """Submitted commands (group commit) not yet answered."""
        return self._pending_commands

    @property
    def apply_backlog(self) -> int:
        """Committed entries waiting to be applied (group commit applies in slices)."""
        return len(self._backlog)

    @property
    def configuration(self) -> Configuration:
        return self._require_node().configuration

    # ------------------------------------------------------------------ the Ready loop

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Group commit: append the commands submitted since the last flush (as few
        entries as MAX_BATCH_BYTES and ``max_commands_per_entry`` allow), persist every
        Ready gathered since with one storage write per run of them, then act on each in
        order (send, apply, answer).

        A flush works for about FLUSH_FRACTION of the heartbeat interval at most (and
        proposes MAX_ENTRIES_PER_FLUSH entries at most, applies as many): what is left, commands
        to propose or committed entries to apply, waits for the next flush, scheduled at
        once, so the event loop sends heartbeats and reads acknowledgements in between."""
        self._flush_scheduled = False
        node = self.node
        if node is None or self._staging is not None:
            return  # a snapshot's file is being written: everything waits for it
        now = self.loop.time()
        budget = self.settings.heartbeat_interval * FLUSH_FRACTION
        self._flush_deadline = now + budget
        if self._queued:
            self._propose_queued(node, now + budget / 2)
        batch, self._batch = self._batch, []
        unstaged = self._first_unstaged_snapshot(batch)
        if unstaged is not None:
            # Act on the Readies before it now; it and all after it wait for its file.
            batch, self._batch = batch[:unstaged], batch[unstaged:]
            snapshot = self._batch[0].snapshot
            assert snapshot is not None
            self._stage_in_background(node, snapshot)
        if batch and not self._save_all(batch):
            return  # the server stopped: nothing of the batch may leave it
        self._apply_budget = APPLY_BUDGET
        self._flushing = True
        try:
            # Every message of the batch first (all of it is durable now), gathered into
            # one write per peer where the transport can; then apply and answer. The
            # followers get to work while this server applies.
            gatherer = self._gatherer
            if gatherer is not None:
                gatherer.gather()
            try:
                send = self.transport.send
                encode = RoundEncoder().encode  # one packing of new entries for all
                for ready in batch:
                    for message in ready.messages:
                        send(message.target, encode(message), message)
            finally:
                if gatherer is not None:
                    gatherer.release()
            for ready in batch:
                self._process(ready, persisted=True, sent=True)
            if self._backlog and self._apply_budget > 0:
                self._apply_backlog()
                self._signal_change()
        finally:
            self._flushing = False
            self._flush_deadline = float("inf")

    def _propose_queued(self, node: RaftNode, deadline: float) -> None:
        """Propose queued commands, oldest first, grouped into entries, until the queue
        is empty, MAX_ENTRIES_PER_FLUSH entries were proposed or ``deadline`` passed;
        the rest stays queued for the next flush (scheduled now)."""
        queued = self._queued
        per_entry = self.max_commands_per_entry or len(queued)
        if per_entry == 1:
            self._propose_one_per_entry(node, deadline)
            return
        time = self.loop.time
        proposed = 0
        while queued and proposed < MAX_ENTRIES_PER_FLUSH:
            if proposed % _CLOCK_STRIDE == _CLOCK_STRIDE - 1 and time() >= deadline:
                break
            group = [queued.popleft()]
            size = len(group[0][0])
            while (queued and len(group) < per_entry
                   and size + len(queued[0][0]) <= MAX_BATCH_BYTES):
                size += len(queued[0][0])
                group.append(queued.popleft())
            data = group[0][0] if len(group) == 1 else encode_batch([g[0] for g in group])
            proposed += 1
            try:
                ready = node.propose(data, time())
            except (NotLeader, ProposalDropped) as exc:
                self._pending_commands -= len(group)
                for _, done, _ in group:
                    done(exc)
                continue
            assert ready.proposed is not None
            index, term = ready.proposed
            self._submitted[index] = (term, [g[1] for g in group], [g[2] for g in group])
            self._batch.append(ready)
        if queued:
            self._schedule_flush()

    def _propose_one_per_entry(self, node: RaftNode, deadline: float) -> None:
        """``_propose_queued`` with one entry per command: runs of _CLOCK_STRIDE
        commands are appended with one ``propose_many`` each (one round of messages and
        one commit check per run, not per command)."""
        queued = self._queued
        submitted = self._submitted
        time = self.loop.time
        proposed = 0
        while queued and proposed < MAX_ENTRIES_PER_FLUSH:
            if proposed and time() >= deadline:
                break
            run = [queued.popleft() for _ in range(min(_CLOCK_STRIDE, len(queued)))]
            proposed += len(run)
            try:
                ready, count = node.propose_many([c for c, _, _ in run], time())
            except (NotLeader, ProposalDropped) as exc:
                self._pending_commands -= len(run)
                for _, done, _ in run:
                    done(exc)
                continue
            assert ready.proposed is not None
            first, term = ready.proposed
            for offset in range(count):
                _, done, op = run[offset]
                submitted[first + offset] = (term, done, op)
            self._batch.append(ready)
            if count < len(run):  # the uncommitted limit took no more
                refused = run[count:]
                self._pending_commands -= len(refused)
                error = UncommittedLimitReached(node.uncommitted_bytes,
                                                self.settings.max_uncommitted_bytes)
                for _, done, _ in refused:
                    done(error)
        if queued:
            self._schedule_flush()

    def _apply_backlog(self) -> None:
        """Apply committed entries in order until this flush's budget is spent
        (APPLY_BUDGET bytes, each entry counted as at least _MIN_APPLY_COST; the flush's
        deadline); what is left waits for the next flush (scheduled now), or for a
        background restore."""
        if self._restoring is not None:
            return
        backlog = self._backlog
        entries: list[Entry] = []
        spent = 0
        deadline = self._flush_deadline
        time = self.loop.time
        budget = self._apply_budget
        take = backlog.popleft
        append = entries.append
        stride = _CLOCK_STRIDE
        while backlog and spent < budget:
            entry = take()
            append(entry)
            size = len(entry.data)
            spent += size if size > _MIN_APPLY_COST else _MIN_APPLY_COST
            stride -= 1
            if not stride:
                stride = _CLOCK_STRIDE
                if time() >= deadline:
                    spent = max(spent, budget)  # nothing more in this flush
                    break
        self._apply_budget -= spent
        if entries:
            self._apply(entries)
        if backlog:
            self._schedule_flush()

    def finish(self) -> None:
        """Before a clean stop (group commit): persist and act on everything held back,
        then write the commit index that was written lazily, so that a restart applies
        what was committed at once. A snapshot file still being written in a worker
        thread is written here instead, blocking the loop (it is stopping): until it is
        durable, nothing after it may be saved, least of all a commit index covering it.
        A failure stops the server as any failed save does."""
        while self.node is not None:
            staging = self._staging
            if staging is not None:
                try:
                    problem = self._check_and_stage(staging)
                except Exception as exc:
                    self._storage_failed(exc)
                    return
                if problem is not None:  # nothing of it is written; stop without it
                    self._emit("snapshot-refused", {"index": staging.index,
                                                    "source": self.node.leader_id,
                                                    "problem": problem})
                    self._halt()
                    return
                self._staging = None
                self._staged.add((staging.index, staging.term))
            self.flush()  # may start staging a later snapshot in the batch
            if self._staging is None:
                break
        node = self.node
        if node is not None:
            self._save(node.hard_state(), (), None)

    def _first_unstaged_snapshot(self, batch: list[Ready]) -> int | None:
        """Live servers: the position of the first Ready whose snapshot (one installed
        from the leader) still has to be written to disk, if any."""
        if not self.background_snapshots:
            return None
        for position, ready in enumerate(batch):
            snapshot = ready.snapshot
            if snapshot is not None and (snapshot.index, snapshot.term) not in self._staged:
                return position
        return None

    def _save_all(self, batch: list[Ready]) -> bool:
        """Persist what ``batch`` says must be durable, merged: one save per snapshot
        (a snapshot starts a new save), later entries replacing earlier ones from their
        first index on, the last hard state. False: a save failed and the server
        stopped."""
        hard_state: HardState | None = None
        entries: list[Entry] = []
        snapshot: Snapshot | None = None
        for ready in batch:
            if ready.snapshot is not None:
                if hard_state is not None or entries or snapshot is not None:
                    if not self._save(hard_state, tuple(entries), snapshot):
                        return False
                    hard_state, entries = None, []
                snapshot = ready.snapshot
            if ready.entries:
                if entries and ready.entries[0].index <= entries[-1].index:
                    del entries[max(ready.entries[0].index - entries[0].index, 0):]
                entries.extend(ready.entries)
            if ready.hard_state is not None:
                hard_state = ready.hard_state
        saved = self._saved_hard_state
        now = self.loop.time()
        if (hard_state is not None and saved is not None and hard_state.term == saved.term
                and hard_state.voted_for == saved.voted_for
                and now - self._commit_saved_at < COMMIT_SAVE_INTERVAL):
            hard_state = None  # only the commit index moved: it can wait
        if hard_state is not None or entries or snapshot is not None:
            if not self._save(hard_state, tuple(entries), snapshot):
                return False
            if hard_state is not None:
                self._saved_hard_state, self._commit_saved_at = hard_state, now
        return True

    def _save(self, hard_state: HardState | None, entries: tuple[Entry, ...],
              snapshot: Snapshot | None) -> bool:
        """One storage write; on failure, stop the server (fail-stop) and say False."""
        try:
            self.storage.save(hard_state, entries, snapshot)
        except Exception as exc:  # any failure: nothing of this save is known durable
            return self._storage_failed(exc)
        if snapshot is not None and self._staged:
            self._staged = {key for key in self._staged if key[0] > snapshot.index}
        return True

    def _storage_failed(self, exc: Exception) -> bool:
        """Trace the failure and stop like a crash: the core already counts the state
        as persisted, so no message, apply or answer may follow. Returns False (True
        only under the ``ack_after_failed_save`` bug switch, which carries on)."""
        if isinstance(exc, StorageError):
            fields: dict[str, Any] = exc.fields()
        else:
            fields = {"file": None, "operation": "save", "errno": None,
                      "error": str(exc) or type(exc).__name__}
        self._emit("storage-failure", fields)
        if self.ack_after_failed_save and not isinstance(exc, PowerLoss):
            return True
        self._halt()
        self.storage_failure = exc
        if self.on_storage_failure is not None:
            self.on_storage_failure(exc)
        return False

    def _process(self, ready: Ready, *, persisted: bool = False, sent: bool = False) -> None:
        node = self.node
        if node is None:
            return
        if self.group_commit and not self._flushing:
            self._batch.append(ready)
            self._schedule_flush()
            return
        # 1. persist: nothing leaves this server before its state is durable
        delay = 0.0
        if not persisted and (ready.hard_state is not None or ready.entries
                              or ready.snapshot is not None):
            if not self._save(ready.hard_state, ready.entries, ready.snapshot):
                return
            if ready.entries:
                self._emit("append", {"from": ready.entries[0].index,
                                      "to": ready.entries[-1].index,
                                      "terms": [e.term for e in ready.entries]})
            if self.disk_seconds is not None:
                delay = self.disk_seconds()
        if delay > 0 or self._after_save:
            # the trace tells what the core did now (the checker reads the core's state
            # as each record arrives); what the server does about it waits for the disk
            for event in ready.events:
                self._emit(event.kind, event.fields)
            self._wait_for_disk(ready, delay)
            return
        self._act(ready, node, sent=sent)

    def _wait_for_disk(self, ready: Ready, delay: float) -> None:
        """Act on ``ready`` once its save (``delay`` seconds, after the saves before
        it) is done; a Ready that saved nothing still waits for the ones before it."""
        due = max(self.loop.time(), self._disk_busy_until) + delay
        self._disk_busy_until = due
        self._after_save.append((due, ready))
        if self._disk_timer is None:  # the head's save ends first (due times only grow)
            self._disk_timer = self.loop.call_at(self._after_save[0][0], self._disk_done)

    def _disk_done(self) -> None:
        """The save at the head of the queue is done: act on it, and on every one
        behind it that is done by now."""
        self._disk_timer = None
        node = self.node
        if node is None:
            return
        if self.paused:
            self._disk_due_while_paused = True
            return
        queue = self._after_save
        now = self.loop.time()  # a timer fires no earlier than its deadline
        while queue and queue[0][0] <= now:
            _, ready = queue.popleft()
            self._act(ready, node, told=True)
            if self.node is not node:
                return  # it stopped (a failed save in what it did): the queue is gone
        self._cancel_disk_timer()  # set for a Ready queued by what was done
        if queue:
            self._disk_timer = self.loop.call_at(queue[0][0], self._disk_done)

    def _cancel_disk_timer(self) -> None:
        # A method of its own, not inline in _disk_done: there mypy takes the timer
        # for None since that function set it so, though _act may have set it again,
        # and the compiled build (raftsim/compiled.py) trusts mypy's view.
        if self._disk_timer is not None:
            self._disk_timer.cancel()
            self._disk_timer = None

    def _act(self, ready: Ready, node: RaftNode, *, told: bool = False,
             sent: bool = False) -> None:
        """A saved Ready's effects, in Raft's order: send, apply, answer (``told``:
        its events are in the trace already; ``sent``: its messages were sent)."""
        # 2. send
        if not sent:
            send = self.transport.send
            for message in ready.messages:
                send(message.target, encode_message(message), message)
        # 3. apply
        changed = False
        if ready.restore is not None:
            if self.background_snapshots:
                self._restore_in_background(ready.restore)
            else:
                self.kv.restore(ready.restore.data)
                self.kv.advance(ready.restore.index)
            for index in [i for i in self._proposals if i <= ready.restore.index]:
                pending = self._proposals.pop(index)
                if not pending.future.done():
                    pending.future.set_exception(LeadershipLost())
            for index in [i for i in self._submitted if i <= ready.restore.index]:
                for done in self._take_submitted(index):
                    done(LeadershipLost())
            self._backlog.clear()  # committed entries the snapshot covers
            changed = True
        if ready.committed:
            if self.group_commit:
                self._backlog.extend(ready.committed)
                self._apply_backlog()
            else:
                self._apply(ready.committed)
            changed = True
        # 4. answer reads
        for state in ready.read_states:
            fut = self._reads.pop(state.request_id, None)
            if fut is not None and not fut.done():
                if state.index is None:
                    fut.set_exception(LeadershipLost())
                else:
                    fut.set_result(state.index)
        for event in ready.events:
            if not told:
                self._emit(event.kind, event.fields)
            if event.kind == "role":
                changed = True
                if event.fields["role"] != Role.LEADER.value:
                    self._fail_all(LeadershipLost())
                self.autopilot.on_role(event.fields["role"] == Role.LEADER.value)
            elif event.kind == "transfer-aborted":
                changed = True  # a transfer request waiting on it answers now
        if changed:
            self._signal_change()
        self._schedule(ready.deadline)
        if (self.snapshot_threshold
                and node.applied - node.log.snapshot_index >= self.snapshot_threshold
                and self.kv.applied_index == node.applied
                and not self._snapshotting and self._restoring is None):
            if self.background_snapshots:
                self._snapshot_in_background(node)
            else:
                self._process(node.compact(node.applied, self.kv.snapshot(),
                                           self.loop.time()))

    # ------------------------------------------------------------------ background snapshots

    def _snapshot_in_background(self, node: RaftNode) -> None:
        """Serialize the state machine in a worker thread from a shallow copy of its
        items (immutable tuples: later writes replace them, never change them), write
        the snapshot's file there too (staged: durable, not yet in place), then compact
        the log up to the index the copy was taken at; the save of that compaction only
        renames the file. Meanwhile the loop goes on serving and replicating."""
        self._snapshotting = True
        index = self.kv.applied_index
        items = dict(self.kv.items)
        header = node.snapshot_at(index, b"")
        storage = self.storage

        def write() -> Snapshot:
            snapshot = dataclasses.replace(header, data=encode_snapshot(index, items))
            try:
                storage.stage_snapshot(snapshot)
            except Exception as exc:
                raise _StageFailed(exc) from exc
            return snapshot

        job = self.loop.run_in_executor(None, write)

        def compact(job: asyncio.Future[Snapshot]) -> None:
            if job.cancelled():
                return  # the loop is closing
            error = job.exception()
            if self.node is not node:
                return  # crashed meanwhile: the job's result belongs to no one
            self._snapshotting = False
            if isinstance(error, _StageFailed):
                self._storage_failed(error.error)
                return
            if error is not None:
                self._emit("snapshot-failed", {"index": index, "error": str(error)})
                return
            snapshot = job.result()
            self._staged.add((snapshot.index, snapshot.term))
            self._process(node.compact(index, snapshot.data, self.loop.time()))

        job.add_done_callback(compact)

    def _stage_in_background(self, node: RaftNode, snapshot: Snapshot) -> None:
        """Write an installed snapshot's file in a worker thread while the Ready that
        installed it, and every later one, waits in the batch; then flush them (their
        save renames the file into place, then they send and apply)."""
        self._staging = snapshot
        job = self.loop.run_in_executor(None, self._check_and_stage, snapshot)

        def staged(job: asyncio.Future[str | None]) -> None:
            if job.cancelled():
                return  # the loop is closing
            error = job.exception()
            if self.node is not node or self._staging is not snapshot:
                return  # crashed meanwhile, or stopping (finish() wrote it)
            self._staging = None
            if error is not None:
                self._storage_failed(error if isinstance(error, Exception)
                                     else RuntimeError(str(error)))
                return
            problem = job.result()
            if problem is not None:
                self._refuse_snapshot(snapshot, problem)
                return
            self._staged.add((snapshot.index, snapshot.term))
            self._schedule_flush()

        job.add_done_callback(staged)

    def _check_and_stage(self, snapshot: Snapshot) -> str | None:
        """Worker thread: what is wrong with an installed snapshot's data (then nothing is
        written), or None once its file is staged. The simulator's core checks it
        instead, as it assembles the chunks."""
        problem = snapshot_data_problem(snapshot.data)
        if problem is None:
            self.storage.stage_snapshot(snapshot)
        return problem

    def _refuse_snapshot(self, snapshot: Snapshot, problem: str) -> None:
        """An installed snapshot whose data is not a key-value snapshot (a forged or
        corrupted stream): the core already took it in memory, but nothing of it, nor of
        anything after it, was written or sent. Start again from the disk, which never
        held it; a real leader's stream times out and starts again."""
        source = self.node.leader_id if self.node is not None else None
        self._emit("snapshot-refused", {"index": snapshot.index, "source": source,
                                        "problem": problem})
        self._halt()
        self.start()

    def _restore_in_background(self, snapshot: Snapshot) -> None:
        """Decode an installed snapshot in a worker thread; committed entries after it
        wait in the backlog, reads wait for the applied index, until it is done."""
        self._restoring = snapshot.index
        self._restore_generation += 1  # a restore still running for an older one is void
        generation = self._restore_generation
        job = self.loop.run_in_executor(None, decode_snapshot, snapshot.data)

        def install(job: asyncio.Future[tuple[int, dict[str, KVItem]]]) -> None:
            if generation != self._restore_generation or self.node is None:
                return
            error = job.exception()
            if error is not None:
                # The leader's snapshot does not decode: a bug, not a fault to survive.
                # Nothing more is applied (the backlog waits for ever) rather than apply
                # entries to a state machine that is not the snapshot's.
                self._emit("restore-failed", {"index": snapshot.index, "error": str(error)})
                raise RuntimeError(f"cannot restore snapshot {snapshot.index}: {error}")
            self._restoring = None
            kv = KVStore()
            kv.applied_index, kv.items = job.result()
            kv.advance(snapshot.index)
            self.kv = kv
            self._wake_readers()
            self._signal_change()
            self._schedule_flush()  # the backlog that waited for this

        job.add_done_callback(install)

    def _apply(self, committed: Sequence[Entry]) -> None:
        kv = self.kv
        proposals = self._proposals
        submitted = self._submitted
        command = EntryKind.COMMAND
        for entry in committed:
            group = submitted.pop(entry.index, None) if submitted else None
            if group is not None:
                term, waiting, ops = group
                if term == entry.term:
                    if isinstance(waiting, list):
                        self._pending_commands -= len(waiting)
                        self._apply_submitted(entry, waiting, ops)
                    else:  # one entry per command
                        self._pending_commands -= 1
                        waiting(kv.apply_op(entry.index, ops))
                    continue
                waiting = _waiting(group)
                self._pending_commands -= len(waiting)
                for done in waiting:  # another leader's entry took its place
                    done(LeadershipLost())
            if entry.kind is command:
                result = kv.apply(entry.index, entry.data)
            else:
                kv.advance(entry.index)
                result = True
            pending = proposals.pop(entry.index, None) if proposals else None
            if pending is not None and not pending.future.done():
                if pending.term == entry.term:
                    pending.future.set_result(result)
                else:
                    pending.future.set_exception(LeadershipLost())
        first, last = committed[0].index, committed[-1].index
        self._emit("apply", {"from": first, "to": last})
        self._wake_readers()

    def _wake_readers(self) -> None:
        kv = self.kv
        if self._read_waiters:
            still = []
            for index, waiter in self._read_waiters:
                if kv.applied_index >= index:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    still.append((index, waiter))
            self._read_waiters = still

    def _take_submitted(self, index: int) -> list[Completion]:
        """The completions waiting for entry ``index``, no longer pending."""
        waiting = _waiting(self._submitted.pop(index))
        self._pending_commands -= len(waiting)
        return waiting

    def _apply_submitted(self, entry: Entry, waiting: list[Completion],
                         ops: list[list[Any]]) -> None:
        """Apply this leader's own entry from the commands decoded when they were
        submitted (the entry's bytes are their encoding: decoding them again would give
        the same), and answer each."""
        for done, result in zip(waiting, self.kv.apply_ops(entry.index, ops), strict=True):
            done(result)

    def _fail_all(self, error: Exception) -> None:
        # Submitted entries already committed (waiting in the backlog) will be applied:
        # they keep their completions. The others may or may not commit.
        committed = self.node.commit_index if self.node is not None else 0
        submitted = self._submitted
        self._submitted = {i: group for i, group in submitted.items() if i <= committed}
        for index, group in submitted.items():
            if index > committed:
                waiting = _waiting(group)
                self._pending_commands -= len(waiting)
                for done in waiting:
                    done(type(error)())
        # Proposals whose entries are committed will be applied (a removed leader's own
        # removal, committed together with writes still waiting in the backlog): they
        # keep their futures too.
        proposals = self._proposals
        self._proposals = {i: p for i, p in proposals.items() if i <= committed}
        for index, pending in proposals.items():
            if index > committed and not pending.future.done():
                pending.future.set_exception(type(error)())
        reads, self._reads = self._reads, {}
        for fut in reads.values():
            if not fut.done():
                fut.set_exception(type(error)())
        # A confirmed read waits only for the state machine, which applies every
        # committed entry whatever the role: it is still served.
        waiters = self._read_waiters
        self._read_waiters = [(i, w) for i, w in waiters if i <= committed]
        for index, waiter in waiters:
            if index > committed and not waiter.done():
                waiter.set_exception(type(error)())

    def _signal_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _schedule(self, deadline: float) -> None:
        if deadline >= self._timer_when:
            return  # the earlier timer fires first and reschedules from the node's view
        if self._timer is not None:
            self._timer.cancel()
        if deadline == float("inf"):
            self._timer, self._timer_when = None, deadline
            return
        self._timer_when = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_when = None, float("inf")
        node = self.node
        if node is None:
            return
        if self.paused:
            self._timer_due_while_paused = True
            return
        deadline = node.deadline()
        if deadline > self.loop.time():
            # Set for a deadline that has moved since (a follower hears its leader, an
            # election timeout restarts): the node has nothing to do yet.
            self._schedule(deadline)
            return
        self._process(node.on_timeout(self.loop.time()))

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        if self.observer is not None:
            term = self.node.term if self.node is not None else 0
            self.observer(self.id, term, kind, fields)
