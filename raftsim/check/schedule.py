"""Random fault schedules and client workloads, as scenario steps, from one seed.

A fuzz case is a scenario file's worth of data -- a ``[cluster]`` table and a list of
``[[step]]`` tables -- drawn from ``random.Random(seed)`` and nothing else, so the seed
alone names it. Steps speak the scenario vocabulary (``crash = "leader"``, ``partition``,
``write = {...}``...), so a failing case is already most of a scenario file.

The schedule is built VOPR-style, with swarm testing: each seed switches on a random
subset of the *nemeses* below (and random cluster settings: PreVote and CheckQuorum on
or off, latency, loss, snapshots), then fills three independent tracks with episodes of
them -- server faults, network splits, link quality -- each episode undoing its own
damage before the next begins. Meanwhile three clients (by default) send reads, writes,
creates-if-absent (``?cas=0``), compare-and-sets on the modify index the client last
read (``?cas=N``; the schedule writes ``?cas=read-index`` and the player puts in the
index when the step plays) and deletes through random servers' HTTP APIs, in the
background.
The nemeses are aimed at the moments where Raft bugs live: right after an election,
while a deposed leader still believes it leads, while a server restarts mid-election.

Disk faults (:data:`DISK_NEMESES`: a failed fsync, a full disk, a torn write, a latent
corrupted record, a slow disk) come from a second generator, ``Random(f"{seed}:disk")``,
on a fourth track of their own in about a third of the seeds (those get ``disk =
"crashdisk"``). Drawing them apart leaves every other seed's schedule as it was, and
keeps a seed's cost close to what it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DISK_NEMESES", "NEMESES", "READ_INDEX", "FuzzCase", "generate_case"]

#: stands for "the modify index this client last read of this key" in a ``?cas=``
READ_INDEX = "read-index"

Step = dict[str, Any]

#: nemesis name -> what an episode of it does (the swarm picks a subset per seed)
NEMESES: dict[str, str] = {
    "crash-leader": "crash the leader, restart it later",
    "crash": "crash a random server, restart it later",
    "leader-churn": "crash each new leader soon after it is elected, then restart them all",
    "bounce": "crash and at once restart random servers, many times, during an election",
    "pause-leader": "pause the leader (a deposed leader that still believes it leads)",
    "pause": "pause a random server",
    "membership": "remove a server and add it back, add a new server, or transfer "
                  "leadership",
    "change-after-election": "depose the leader, then ask for a membership change at once",
    "isolate-leader": "cut the leader off from everyone",
    "partition": "split the servers into a minority and a majority",
    "fragment": "leave the leader with one follower and every other server alone",
    "cut": "one-way cuts to or from the leader or between random servers",
    "latency": "slow the network down",
    "loss": "drop a share of the messages",
    "reorder": "reorder messages (hold some back so later ones overtake them)",
}

#: disk fault -> what an episode of it does (drawn apart from NEMESES, see above)
DISK_NEMESES: dict[str, str] = {
    "fail-fsync": "a server's next fsync fails (EIO): it stops; restart it later",
    "disk-full": "a server's next write finds the disk full (ENOSPC): it stops; restart "
                 "it later",
    "torn-write": "the power fails in the middle of a server's next log write; restart "
                  "it later (recovery drops the torn record)",
    "corrupt": "a server's newest committed record goes bad on disk; crash it: it "
               "refuses to restart and stays down (at most once a seed)",
    "slow-disk": "a server's saves take 5 to 100 ms for a while",
}
#: the share of seeds with disk faults
DISK_SEED_SHARE = 0.35

_SERVER_TRACK = ("crash-leader", "crash", "leader-churn", "bounce", "pause-leader", "pause",
                 "membership", "change-after-election")
_NETWORK_TRACK = ("isolate-leader", "partition", "fragment", "cut")
_LINK_TRACK = ("latency", "loss", "reorder")


@dataclass(slots=True)
class FuzzCase:
    """One seed's schedule: the ``[cluster]`` table and the ``[[step]]`` tables."""

    seed: int
    servers: int
    duration: float
    clients: int
    cluster: dict[str, Any]
    steps: list[Step]
    nemeses: list[str] = field(default_factory=list)
    #: the client sending each step's request (None: not a client request); a client
    #: waits for one answer before its next request goes out
    clients_of: list[str | None] = field(default_factory=list)


def _t(value: float) -> float:
    """Times are written with six decimals, so TOML gives back exactly the same float."""
    return round(value, 6)


class _Builder:
    def __init__(self, rng: random.Random, servers: int, duration: float) -> None:
        self.rng = rng
        self.ids = [f"s{k}" for k in range(1, servers + 1)]
        self.duration = duration
        self.steps: list[tuple[float, int, Step, str | None]] = []
        self._order = 0
        self._names = 0
        self.added = 0
        self.burst = 0
        self.keys: list[str] = []
        #: faults end by then, so requests in flight can finish before the end
        self.quiet_from = max(duration - 2.5, 0.0)

    def at(self, time: float, step: Step, client: str | None = None) -> None:
        self._order += 1
        self.steps.append((_t(time), self._order, {"at": _t(time), **step}, client))

    def name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def other(self, *not_these: str) -> str:
        choices = [s for s in self.ids if s not in not_these]
        return self.rng.choice(choices or self.ids)

    def sorted_steps(self) -> tuple[list[Step], list[str | None]]:
        ordered = sorted(self.steps, key=lambda x: (x[0], x[1]))
        return [step for _, _, step, _ in ordered], [client for _, _, _, client in ordered]


# ---------------------------------------------------------------- the nemeses

def _crash_leader(b: _Builder, t: float) -> float:
    name = b.name("c")
    b.at(t, {"crash": "leader", "as": name})
    end = t + b.rng.choice([b.rng.uniform(0.05, 0.4), b.rng.uniform(0.4, 3.0)])
    b.at(end, {"restart": f"${name}"})
    return end


def _crash(b: _Builder, t: float) -> float:
    sid = b.rng.choice(b.ids)
    end = t + b.rng.uniform(0.1, 3.0)
    b.at(t, {"crash": sid})
    b.at(end, {"restart": sid})
    return end


def _leader_churn(b: _Builder, t: float) -> float:
    names = []
    for _ in range(b.rng.randint(2, 4)):
        name = b.name("c")
        names.append(name)
        b.at(t, {"crash": "leader", "as": name})
        t += b.rng.uniform(0.15, 0.6)
    for name in names:
        t += b.rng.uniform(0.0, 0.3)
        b.at(t, {"restart": f"${name}"})
    return t


def _bounce(b: _Builder, t: float, base_latency: list[float]) -> float:
    """Servers crash and come straight back while an election runs (on a slow network,
    often): a vote cast just before a crash must survive it."""
    rng = b.rng
    end = t
    slow = rng.random() < 0.5
    if slow:
        b.at(t, {"latency": [base_latency[0], rng.choice([0.02, 0.05, 0.1])]})
    if rng.random() < 0.7:
        name = b.name("c")
        b.at(t, {"crash": "leader", "as": name})
        end = t + rng.uniform(0.2, 1.5)
        b.at(end, {"restart": f"${name}"})
    now = t + rng.uniform(0.1, 0.3)
    stop = now + rng.uniform(0.4, 1.2)
    while now < stop:
        down = now + rng.uniform(0.001, 0.015)
        for sid in rng.sample(b.ids, 1 if rng.random() < 0.7 else 2):
            b.at(now, {"crash": sid})
            b.at(down, {"restart": sid})
        now = down + rng.uniform(0.005, 0.03)
    end = max(end, now)
    if slow:
        b.at(end, {"latency": list(base_latency)})
    return end


def _pause_leader(b: _Builder, t: float) -> float:
    name = b.name("p")
    end = t + b.rng.uniform(0.4, 3.0)
    b.at(t, {"pause": "leader", "as": name})
    b.at(end, {"resume": f"${name}"})
    return end


def _pause(b: _Builder, t: float) -> float:
    sid = b.rng.choice(b.ids)
    end = t + b.rng.uniform(0.1, 2.0)
    b.at(t, {"pause": sid})
    b.at(end, {"resume": sid})
    return end


def _request(kind: str, via: str, **fields: Any) -> Step:
    return {kind: {**fields, "via": via, "background": True}}


def _membership(b: _Builder, t: float) -> float:
    rng = b.rng
    choice = rng.random()
    if choice < 0.45:
        subject = rng.choice(b.ids)
        b.at(t, _request("remove", rng.choice(b.ids), server=subject))
        end = t + rng.uniform(0.3, 3.0)
        b.at(end, _request("add", rng.choice(b.ids), server=subject))
        return end
    if choice < 0.7 and b.added < 2:
        b.added += 1
        new = f"s{len(b.ids) + b.added}"
        b.at(t, _request("add", rng.choice(b.ids), server=new, voter=rng.random() < 0.7))
        end = t + rng.uniform(0.5, 4.0)
        b.at(end, _request("remove", rng.choice(b.ids), server=new))
        return end
    b.at(t, _request("transfer", rng.choice(b.ids), server=rng.choice(b.ids)))
    return t + rng.uniform(0.2, 1.0)


def _change_after_election(b: _Builder, t: float) -> float:
    rng = b.rng
    name = b.name("c")
    how = rng.choice(["crash", "isolate", "pause"])
    if how == "crash":
        b.at(t, {"crash": "leader", "as": name})
    elif how == "pause":
        b.at(t, {"pause": "leader", "as": name})
    else:
        b.at(t, {"isolate": "leader", "as": name})
    change_at = t + rng.uniform(0.0, 0.5)
    via = rng.choice(b.ids)
    readd: str | None = None
    if rng.random() < 0.6:
        readd = rng.choice(b.ids)
        b.at(change_at, _request("remove", via, server=readd))
    elif b.added < 2:
        b.added += 1
        new = f"s{len(b.ids) + b.added}"
        b.at(change_at, _request("add", via, server=new))
    else:
        b.at(change_at, _request("transfer", via, server=rng.choice(b.ids)))
    end = change_at + rng.uniform(0.3, 2.5)
    if how == "crash":
        b.at(end, {"restart": f"${name}"})
    elif how == "pause":
        b.at(end, {"resume": f"${name}"})
    else:
        b.at(end, {"heal": True})
    if readd is not None:
        end += rng.uniform(0.1, 1.0)
        b.at(end, _request("add", rng.choice(b.ids), server=readd))
    return end


def _isolate_leader(b: _Builder, t: float) -> float:
    end = t + b.rng.uniform(0.3, 4.0)
    b.at(t, {"isolate": "leader"})
    b.at(end, {"heal": True})
    return end


def _partition(b: _Builder, t: float) -> float:
    ids = list(b.ids)
    b.rng.shuffle(ids)
    k = b.rng.randint(1, max(1, (len(ids) - 1) // 2))
    end = t + b.rng.uniform(0.3, 4.0)
    b.at(t, {"partition": [sorted(ids[:k]), sorted(ids[k:])]})
    b.at(end, {"heal": True})
    return end


def _fragment(b: _Builder, t: float) -> float:
    """No majority anywhere: a leader that does not check for a quorum keeps taking
    writes it cannot commit (a burst of them here). Then the network mends, often
    first into a majority around that leader, sometimes with the leader crashing, so
    that a new leader takes over a long tail of entries from an earlier term."""
    rng = b.rng
    end = t + rng.uniform(0.5, 5.0)
    follower = rng.choice(b.ids)
    name = b.name("f")
    b.at(t, {"partition": [["leader", follower]], "as": name})
    if rng.random() < 0.7:
        now = t + rng.uniform(0.0, 0.3)
        for _ in range(rng.randint(40, 150)):
            if now >= end:
                break
            b.burst += 1
            # a key of its own: dozens of writes pending at once on one key would make
            # the linearizability search explode, and the point here is the backlog
            b.at(now, _request("write", "leader", key=f"burst{b.burst}",
                               value=f"b{b.burst}"), f"burst{b.burst}")
            now += rng.uniform(0.005, 0.03)
    choice = rng.random()
    crashed = ""
    if choice < 0.4:
        # into a majority around the old leader
        b.at(end, {"partition": [[f"${name}", follower, b.other(follower)]]})
        end += rng.uniform(0.3, 2.0)
    elif choice < 0.8:
        # the old leader crashes; its follower and two others make a majority
        crashed = b.name("c")
        b.at(end, {"crash": f"${name}", "as": crashed})
        others = [s for s in b.ids if s != follower]
        b.at(end, {"partition": [[follower, *rng.sample(others, min(2, len(others)))]]})
        end += rng.uniform(0.3, 2.0)
    b.at(end, {"heal": True})
    if crashed:
        end += rng.uniform(0.1, 1.0)
        b.at(end, {"restart": f"${crashed}"})
    return end


def _cut(b: _Builder, t: float) -> float:
    for _ in range(b.rng.randint(1, 4)):
        a = b.rng.choice(["leader", *b.ids])
        other = b.other(a)
        pair = (a, other) if b.rng.random() < 0.5 else (other, a)
        b.at(t, {"cut": {"from": pair[0], "to": pair[1]}})
    end = t + b.rng.uniform(0.3, 4.0)
    b.at(end, {"heal": True})
    return end


def _latency(b: _Builder, t: float, base: list[float]) -> float:
    high = b.rng.choice([0.02, 0.05, 0.1, 0.2])
    end = t + b.rng.uniform(0.5, 5.0)
    b.at(t, {"latency": [base[0], high]})
    b.at(end, {"latency": list(base)})
    return end


def _loss(b: _Builder, t: float, base: float) -> float:
    end = t + b.rng.uniform(0.5, 4.0)
    b.at(t, {"loss": round(b.rng.uniform(0.05, 0.4), 3)})
    b.at(end, {"loss": base})
    return end


def _reorder(b: _Builder, t: float) -> float:
    end = t + b.rng.uniform(0.5, 4.0)
    b.at(t, {"reorder": round(b.rng.uniform(0.1, 0.5), 3)})
    b.at(end, {"reorder": 0.0})
    return end


# ---------------------------------------------------------------- disk faults

def _disk_episode(b: _Builder, rng: random.Random, name: str, t: float) -> float:
    """One disk fault on the leader or a random server, undone (restarted, sped up)
    after a while; ``rng`` is the disk generator, not the builder's."""
    target = "leader" if rng.random() < 0.4 else rng.choice(b.ids)
    bound = b.name("d")
    if name == "slow-disk":
        end = t + rng.uniform(0.5, 4.0)
        b.at(t, {"slow_disk": {"server": target, "seconds": rng.choice(
            [0.005, 0.01, 0.02, 0.05, 0.1])}, "as": bound})
        b.at(end, {"slow_disk": {"server": f"${bound}", "seconds": 0.0}})
        return end
    if name == "corrupt":
        b.at(t, {"corrupt": target, "as": bound})
        t += rng.uniform(0.1, 1.0)
        b.at(t, {"crash": f"${bound}"})
        end = t + rng.uniform(0.1, 1.0)
        b.at(end, {"restart": f"${bound}"})  # refused: it stays down
        return end
    step = {"fail-fsync": "fail_fsync", "disk-full": "disk_full",
            "torn-write": "torn_write"}[name]
    b.at(t, {step: target, "as": bound})
    end = t + rng.uniform(0.3, 3.0)
    if name == "fail-fsync" and rng.random() < 0.5:
        # the unsynced tail a failed fsync may have dropped matters at a restart
        b.at(end, {"crash": f"${bound}"})
        end += rng.uniform(0.01, 0.5)
    b.at(end, {"restart": f"${bound}"})
    return end


def _disk_track(b: _Builder, seed: int, cluster: dict[str, Any]) -> list[str]:
    """Disk fault episodes in about a third of the seeds, from their own generator;
    the disk faults switched on (empty: none, and the cluster keeps its memory disk)."""
    rng = random.Random(f"{seed}:disk")
    if rng.random() >= DISK_SEED_SHARE:
        return []
    enabled = [n for n in DISK_NEMESES if rng.random() < 0.5] or [rng.choice(
        list(DISK_NEMESES))]
    cluster["disk"] = "crashdisk"
    corrupted = False
    t = rng.uniform(0.8, 3.0)
    while t < b.quiet_from - 0.5:
        name = rng.choice(enabled)
        if name == "corrupt":
            if corrupted:
                name = "slow-disk"
            corrupted = True
        t = _disk_episode(b, rng, name, t) + rng.uniform(0.5, 3.0)
    return enabled


# ---------------------------------------------------------------- the case

def _track(b: _Builder, nemeses: list[str], episode: Callable[[str, float], float],
           start: float, gap: tuple[float, float]) -> None:
    if not nemeses:
        return
    t = start
    while t < b.quiet_from - 0.5:
        end = episode(b.rng.choice(nemeses), t)
        t = end + b.rng.uniform(*gap)


def _workload(b: _Builder, clients: int, keys: list[str], rate: float) -> None:
    rng = b.rng
    for client in range(1, clients + 1):
        t = rng.uniform(0.3, 0.6)
        n = 0
        while t < b.duration - 1.5:
            n += 1
            via = rng.choice(b.ids)
            key = rng.choice(keys)
            r = rng.random()
            if r < 0.40:
                step = _request("write", via, key=key, value=f"c{client}-{n}")
            elif r < 0.80:
                step = _request("read", via, key=key)
            elif r < 0.86:
                step = {"api": {"server": via, "method": "PUT",
                                "path": f"/v1/kv/{key}?cas=0", "body": f"c{client}-{n}",
                                "background": True}}
            elif r < 0.94:
                step = {"api": {"server": via, "method": "PUT",
                                "path": f"/v1/kv/{key}?cas={READ_INDEX}",
                                "body": f"c{client}-{n}", "background": True}}
            else:
                step = _request("delete", via, key=key)
            b.at(t, step, f"c{client}")
            t += rng.expovariate(rate)
    # final reads: what every key ended up as
    for key in keys:
        b.at(b.duration - 1.0, _request("read", rng.choice(b.ids), key=key), "final")


def generate_case(seed: int, *, servers: int = 5, duration: float = 30.0,
                  clients: int = 3) -> FuzzCase:
    """The schedule of ``seed``: everything drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)
    b = _Builder(rng, servers, duration)
    cluster: dict[str, Any] = {"servers": servers}
    if rng.random() < 0.5:
        cluster["pre_vote"] = False
    if rng.random() < 0.5:
        cluster["check_quorum"] = False
    base_latency = rng.choice([[0.001, 0.005], [0.001, 0.005], [0.001, 0.02],
                               [0.005, 0.03]])
    if base_latency != [0.001, 0.005]:
        cluster["latency"] = base_latency
    base_loss = 0.0
    if rng.random() < 0.2:
        base_loss = round(rng.uniform(0.01, 0.05), 3)
        cluster["loss"] = base_loss
    if rng.random() < 0.25:
        cluster["snapshot_threshold"] = rng.choice([16, 32, 64])
    if rng.random() < 0.35:
        # small AppendEntries: a follower acknowledges a long tail bit by bit
        cluster["max_entries_per_message"] = rng.choice([1, 2, 4, 8])

    enabled = [n for n in NEMESES if rng.random() < 0.5]
    while len(enabled) < 2:
        extra = rng.choice(list(NEMESES))
        if extra not in enabled:
            enabled.append(extra)
    enabled.sort(key=list(NEMESES).index)

    handlers: dict[str, Callable[[_Builder, float], float]] = {
        "crash-leader": _crash_leader, "crash": _crash, "leader-churn": _leader_churn,
        "bounce": lambda b, t: _bounce(b, t, base_latency),
        "pause-leader": _pause_leader, "pause": _pause,
        "membership": _membership, "change-after-election": _change_after_election,
        "isolate-leader": _isolate_leader, "partition": _partition,
        "fragment": _fragment, "cut": _cut,
        "latency": lambda b, t: _latency(b, t, base_latency),
        "loss": lambda b, t: _loss(b, t, base_loss),
        "reorder": _reorder,
    }

    b.keys = [f"k{k}" for k in range(1, rng.randint(2, 4) + 1)]

    def episode(name: str, t: float) -> float:
        return handlers[name](b, t)

    _track(b, [n for n in enabled if n in _SERVER_TRACK], episode,
           rng.uniform(0.8, 2.0), (0.3, 2.0))
    _track(b, [n for n in enabled if n in _NETWORK_TRACK], episode,
           rng.uniform(0.8, 3.0), (0.3, 2.5))
    _track(b, [n for n in enabled if n in _LINK_TRACK], episode,
           rng.uniform(0.5, 3.0), (0.5, 3.0))
    rate = rng.uniform(2.5, 6.0)
    _workload(b, clients, b.keys, rate)
    if rng.random() < 0.3:
        # clocks that disagree (rate and offset per server, from the seed): Raft's
        # safety must not depend on them (docs/testing.md, "What depends on time")
        cluster["clock_drift"] = rng.choice([0.001, 0.05, 0.2])
    enabled += _disk_track(b, seed, cluster)
    b.at(duration, {"say": "end of the schedule"})
    steps, clients_of = b.sorted_steps()
    return FuzzCase(seed, servers, duration, clients, cluster, steps, enabled, clients_of)
