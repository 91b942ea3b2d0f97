"""The simulated world: virtual time, a faulty network, one seed for everything.

``VirtualTimeLoop`` runs the real asyncio servers with a clock that jumps from timer to
timer; ``SimNetwork`` carries their bytes with seeded latency, loss, duplication,
reordering and partitions.
"""

from raftsim.sim.loop import SimulationDeadlock, VirtualTimeLoop, run_virtual
from raftsim.sim.network import DROP_REASONS, NetworkObserver, SimNetwork

__all__ = [
    "DROP_REASONS",
    "NetworkObserver",
    "SimNetwork",
    "SimulationDeadlock",
    "VirtualTimeLoop",
    "run_virtual",
]
