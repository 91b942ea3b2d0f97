"""raftsim: a Raft consensus simulator that is a real Raft implementation."""

from raftsim.compiled import install as _install_compiled_build

__version__ = "0.1.0"

# the compiled core and network (raftsim/compiled.py), when a build matching these
# sources exists; the plain Python modules otherwise
_install_compiled_build()
