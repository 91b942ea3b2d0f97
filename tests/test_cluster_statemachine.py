"""A Hypothesis state machine over a simulated cluster.

Rules let time pass, crash, restart, pause and resume servers, split the network (both
ways and one way) and heal it, change loss and latency, send reads, writes and
create-if-absent requests from three clients, and add, remove and transfer through the
operator API. Every rule is a scenario step, played through the scenario runner's engine
(:class:`~raftsim.check.player.SchedulePlayer`), so a failing rule sequence -- shrunk by
Hypothesis to a short one -- is written out as a scenario file that ``raftsim run``
fails on. The safety invariants are checked after every step, the KV history for
linearizability at the end. Derandomized: the same examples on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from raftsim.check.outcome import CaseRun, judge
from raftsim.check.player import SchedulePlayer, scenario_of
from raftsim.check.reproducer import verify_reproducer, write_scenario_file
from raftsim.scenario import load_scenario

SETTINGS = settings(max_examples=20, stateful_step_count=30, derandomize=True,
                    database=None, deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow])
#: how much virtual time a rule lets pass before it acts
PAUSES = st.sampled_from([0.0, 0.005, 0.05, 0.2, 0.7])
CLIENTS = st.sampled_from(["c1", "c2", "c3"])
KEYS = st.sampled_from(["x", "y"])


def cluster_machine(servers: int = 5, *, bugs: tuple[str, ...] = (),
                    out: Path | None = None) -> type[RuleBasedStateMachine]:
    """The machine for a cluster of ``servers`` with ``bugs`` switched on; a failing
    example is written to ``out/statemachine-failure.toml``."""
    ids = [f"s{k}" for k in range(1, servers + 1)]
    server_ids = st.sampled_from(ids)
    targets = st.sampled_from(["leader", *ids])
    minority = max(1, (servers - 1) // 2)

    class ClusterMachine(RuleBasedStateMachine):
        #: (steps, trace digest, verdict) of each example run, for the determinism test
        log: ClassVar[list[tuple[str, str, str]]] = []

        def __init__(self) -> None:
            super().__init__()
            self.player: SchedulePlayer | None = None
            self.tables: list[dict[str, Any]] = []
            self.cluster_table: dict[str, Any] = {}
            self.seed = 0
            self.now = 0.0
            self.values = 0

        # -------------------------------------------------------------- playing steps

        @initialize(seed=st.integers(0, 1000), pre_vote=st.booleans(),
                    check_quorum=st.booleans())
        def start(self, seed: int, pre_vote: bool, check_quorum: bool) -> None:
            self.seed = seed
            self.cluster_table = {"servers": len(ids), "pre_vote": pre_vote,
                                  "check_quorum": check_quorum}
            self.player = SchedulePlayer(self._scenario([{"at": 0.0}]), trace_messages=False)
            self.player.begin()

        def _scenario(self, tables: list[dict[str, Any]]) -> Any:
            return scenario_of(tables, cluster=self.cluster_table, seed=self.seed,
                               bugs=bugs, title="state machine")

        def _play(self, dt: float, table: dict[str, Any], client: str | None = None) -> None:
            assert self.player is not None
            self.now = round(self.now + dt, 6)
            self.tables.append({"at": self.now, **table})
            # parsed with every step before it, as in a file (an `add` makes an id known)
            step = self._scenario(self.tables).steps[-1]
            self.player.play(step, self.tables[-1], client)

        def _request(self, dt: float, kind: str, client: str | None = None,
                     **fields: Any) -> None:
            self._play(dt, {kind: {**fields, "background": True}}, client)

        # -------------------------------------------------------------- rules

        @rule(dt=st.sampled_from([0.05, 0.3, 1.0]))
        def time_passes(self, dt: float) -> None:
            self._play(dt, {})

        @rule(dt=PAUSES, who=targets)
        def crash(self, dt: float, who: str) -> None:
            self._play(dt, {"crash": who})

        @rule(dt=PAUSES, who=server_ids)
        def restart(self, dt: float, who: str) -> None:
            self._play(dt, {"restart": who})

        @rule(dt=PAUSES, who=targets)
        def pause(self, dt: float, who: str) -> None:
            self._play(dt, {"pause": who})

        @rule(dt=PAUSES, who=server_ids)
        def resume(self, dt: float, who: str) -> None:
            self._play(dt, {"resume": who})

        @rule(dt=PAUSES, order=st.permutations(ids), size=st.integers(1, minority))
        def partition(self, dt: float, order: list[str], size: int) -> None:
            self._play(dt, {"partition": [sorted(order[:size]), sorted(order[size:])]})

        @rule(dt=PAUSES, source=targets, to=server_ids)
        def cut_one_way(self, dt: float, source: str, to: str) -> None:
            self._play(dt, {"cut": {"from": source, "to": to}})

        @rule(dt=PAUSES, who=targets)
        def isolate(self, dt: float, who: str) -> None:
            self._play(dt, {"isolate": who})

        @rule(dt=PAUSES)
        def heal(self, dt: float) -> None:
            self._play(dt, {"heal": True})

        @rule(dt=PAUSES, loss=st.sampled_from([0.0, 0.05, 0.3]))
        def loss(self, dt: float, loss: float) -> None:
            self._play(dt, {"loss": loss})

        @rule(dt=PAUSES, latency=st.sampled_from([[0.001, 0.005], [0.001, 0.05], [0.01, 0.1]]))
        def latency(self, dt: float, latency: list[float]) -> None:
            self._play(dt, {"latency": latency})

        @rule(dt=PAUSES, client=CLIENTS, key=KEYS, via=server_ids)
        def write(self, dt: float, client: str, key: str, via: str) -> None:
            self.values += 1
            self._request(dt, "write", client, key=key, value=f"{client}-{self.values}", via=via)

        @rule(dt=PAUSES, client=CLIENTS, key=KEYS, via=server_ids)
        def read(self, dt: float, client: str, key: str, via: str) -> None:
            self._request(dt, "read", client, key=key, via=via)

        @rule(dt=PAUSES, client=CLIENTS, key=KEYS, via=server_ids)
        def create_if_absent(self, dt: float, client: str, key: str, via: str) -> None:
            self.values += 1
            self._request(dt, "api", client, server=via, method="PUT", path=f"/v1/kv/{key}?cas=0",
                          body=f"{client}-{self.values}")

        @rule(dt=PAUSES, client=CLIENTS, key=KEYS, via=server_ids)
        def delete(self, dt: float, client: str, key: str, via: str) -> None:
            self._request(dt, "delete", client, key=key, via=via)

        @rule(dt=PAUSES, server=server_ids, via=server_ids)
        def remove_peer(self, dt: float, server: str, via: str) -> None:
            self._request(dt, "remove", server=server, via=via)

        @rule(dt=PAUSES, server=server_ids, via=server_ids, voter=st.booleans())
        def add_peer(self, dt: float, server: str, via: str, voter: bool) -> None:
            self._request(dt, "add", server=server, via=via, voter=voter)

        @rule(dt=PAUSES, server=server_ids, via=server_ids)
        def transfer_leadership(self, dt: float, server: str, via: str) -> None:
            self._request(dt, "transfer", server=server, via=via)

        # -------------------------------------------------------------- judging

        @invariant()
        def safety_holds(self) -> None:
            if self.player is None or not self.player.violations:
                return
            run = judge(self.player)
            self.player = None
            self._fail(run)

        def teardown(self) -> None:
            if self.player is None:
                return
            # mend everything, so requests still in flight finish soon
            for sid in ids:
                self._play(0.0, {"restart": sid})
                self._play(0.0, {"resume": sid})
            self._play(0.0, {"heal": True})
            self._play(0.0, {"loss": 0.0})
            self._play(0.0, {"latency": [0.001, 0.005]})
            self._play(0.5, {})
            player, self.player = self.player, None
            player.end()
            run = judge(player)
            self.log.append((repr(self.tables), run.digest, run.invariant or "ok"))
            if run.failed:
                self._fail(run)

        def _fail(self, run: CaseRun) -> None:
            where = ""
            if out is not None:
                path = out / "statemachine-failure.toml"
                write_scenario_file(path, run, cluster=self.cluster_table, seed=self.seed,
                                    bugs=bugs, title="state machine",
                                    origin="Found by tests/test_cluster_statemachine.py.")
                where = f" (written to {path})"
            raise AssertionError(f"{run.invariant}: {run.message}{where}")

    return ClusterMachine


TestCluster = cluster_machine().TestCase
TestCluster.settings = SETTINGS


def test_a_failure_is_shrunk_and_written_as_a_scenario_that_raftsim_run_fails(
        tmp_path: Path) -> None:
    """With a bug switch on, the machine fails; the shrunk example is a short scenario
    file, and the scenario runner fails on it too."""

    bugged = cluster_machine(3, bugs=("no-log-check",), out=tmp_path)
    with pytest.raises(AssertionError) as failure:
        run_state_machine_as_test(bugged, settings=settings(
            SETTINGS, max_examples=60, stateful_step_count=20))
    assert "written to" in str(failure.value)
    path = tmp_path / "statemachine-failure.toml"
    scenario = load_scenario(path)
    assert scenario.bugs == ("no-log-check",)
    assert len(scenario.steps) <= 20 + 9  # the rules, and the teardown's mending steps
    verified, message = verify_reproducer(path)
    assert verified, message


def test_the_examples_are_the_same_on_every_run() -> None:
    """Derandomized examples, deterministic simulation: two runs of the machine play the
    same step sequences and get the same trace digests and verdicts."""

    logged = cluster_machine()
    log: list[tuple[str, str, str]] = logged.log  # type: ignore[attr-defined]
    quick = settings(SETTINGS, max_examples=5, stateful_step_count=15)
    run_state_machine_as_test(logged, settings=quick)
    first = list(log)
    log.clear()
    run_state_machine_as_test(logged, settings=quick)
    assert log == first and len(first) >= 5
