"""The optional compiled build: the Raft core and the simulated network as C extensions.

The simulator spends its time in a handful of modules that run once per message (the
core's ``step``, the log, the quorum arithmetic, the network's send and arrive, the
server runtime around the core). mypyc, the compiler that ships with mypy, turns exactly
these type-annotated modules into C extensions -- same source, same behaviour, types
checked at run time -- and simulations run about 1.8x faster. (mypy itself and black
are built the same way.)

The build never shadows the source: ``raftsim compile`` (``make compile``) writes the
extensions into ``<sys.prefix>/raftsim-compiled`` (the virtual environment, not the
source tree) with a manifest of the SHA-256 of every source file of the package.
``import raftsim`` uses them only while every one of those files is unchanged and the
interpreter's ABI is the one they were built for; otherwise -- a file edited since the
build, another Python, no build at all, or ``RAFTSIM_COMPILED=0`` in the environment --
it runs the plain Python modules, all of them (the compiled modules call each other
directly, so they are used together or not at all). ``make test`` and ``make bench``
rebuild when a source changed; the scenario goldens and fuzz seeds, run both ways by
``tests/test_compiled.py``, hold the two builds to byte-identical traces.

One rule for the compiled modules: mypyc trusts mypy's types, narrowed ones included, so
a re-check of an attribute that a call in between may have changed (which mypy reads as
unreachable code) would raise ``TypeError`` compiled. ``pyproject.toml`` makes mypy's
``warn_unreachable`` an error in exactly these modules; ask again through a method
(``RaftNode._leading``, ``Server._cancel_disk_timer``).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED_MODULES", "active", "build", "default_directory", "install",
           "loadable"]

#: the modules compiled, in dependency order: the ones every simulated message runs
COMPILED_MODULES: tuple[str, ...] = (
    "raftsim.core.ready",
    "raftsim.core.quorum",
    "raftsim.core.configuration",
    "raftsim.core.log",
    "raftsim.core.node",
    "raftsim.sim.network",
    "raftsim.sim.outside",
    "raftsim.runtime.autopilot",
    "raftsim.runtime.server",
)
#: the build is used only with the very sources it was built from: every module of the
#: package, since a compiled module relies on the types of everything it calls
_SOURCES_FROM = "raftsim"
MANIFEST = "manifest.json"
#: setting this to 0 runs the plain Python modules even when a fresh build exists
ENVIRONMENT_SWITCH = "RAFTSIM_COMPILED"

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_active = False


def default_directory() -> Path:
    """Where the build lives: inside the running environment, beside its packages."""
    return Path(sys.prefix) / "raftsim-compiled"


def _abi() -> str:
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def _sources(root: Path) -> list[Path]:
    return sorted((root / _SOURCES_FROM).rglob("*.py"))


def _digests(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in _sources(root)}


def loadable(directory: Path, root: Path = _PACKAGE_ROOT) -> dict[str, Path]:
    """Module name -> extension file for a build in ``directory`` that matches the
    sources under ``root`` and this interpreter; empty when any of it does not (then
    nothing of it may be used)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        if manifest["abi"] != _abi() or manifest["sources"] != _digests(root):
            return {}
        extensions = {name: directory / file for name, file in manifest["extensions"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    if set(COMPILED_MODULES) - set(extensions) or not all(
            path.is_file() for path in extensions.values()):
        return {}
    return extensions


class _Finder:
    """Finds the compiled modules (and the library they share) in the build: a meta
    path finder (not subclassing ``importlib.abc``'s, whose import costs more than the
    rest of ``import raftsim``)."""

    def __init__(self, extensions: dict[str, Path]) -> None:
        self._extensions = extensions

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        location = self._extensions.get(fullname)
        if location is None:
            return None
        return importlib.util.spec_from_file_location(fullname, location)


def install(directory: Path | None = None) -> bool:
    """Use a fresh build for every later import of the compiled modules (called by
    ``import raftsim``, before any of them is imported). True if it is used."""
    global _active
    if _active:
        return True
    if os.environ.get(ENVIRONMENT_SWITCH, "1") == "0":
        return False
    if any(name in sys.modules for name in COMPILED_MODULES):
        return False  # too late: part of the plain build is loaded already
    extensions = loadable(directory or default_directory())
    if not extensions:
        return False
    sys.meta_path.insert(0, _Finder(extensions))
    _active = True
    return True


def active() -> bool:
    """Whether this process runs the compiled modules (what a benchmark reports)."""
    return _active


def build(directory: Path | None = None, root: Path = _PACKAGE_ROOT) -> dict[str, Path]:
    """Compile :data:`COMPILED_MODULES` with mypyc into ``directory``, replacing what
    was there only once the whole build succeeded. Raises on failure."""
    import shutil
    import tempfile

    from mypyc.build import mypycify  # the build needs mypy; running raftsim does not
    from setuptools import setup

    directory = directory or default_directory()
    digests = _digests(root)
    files = [name.replace(".", "/") + ".py" for name in COMPILED_MODULES]
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="raftsim-compile-",
                                     dir=directory.parent) as scratch:
        output = Path(scratch) / "out"
        cwd = os.getcwd()
        os.chdir(root)  # mypy finds the raftsim package from here
        try:
            modules = mypycify(files, opt_level="3", target_dir=str(Path(scratch) / "c"))
            setup(name="raftsim-compiled", packages=[], py_modules=[], ext_modules=modules,
                  script_args=[
                "--quiet", "build_ext", "--build-lib", str(output),
                "--build-temp", str(Path(scratch) / "temp")])
        finally:
            os.chdir(cwd)
        extensions = {
            ".".join(path.relative_to(output).parts)[: -len(_abi())]: path.relative_to(output)
            for path in sorted(output.rglob("*" + _abi()))
        }
        missing = set(COMPILED_MODULES) - set(extensions)
        if missing:
            raise RuntimeError(f"the build produced no extension for {sorted(missing)}")
        (output / MANIFEST).write_text(json.dumps({
            "abi": _abi(), "sources": digests,
            "extensions": {name: path.as_posix() for name, path in extensions.items()},
        }, indent=1, sort_keys=True))
        if directory.exists():
            shutil.rmtree(directory)
        output.rename(directory)
    return {name: directory / path for name, path in extensions.items()}
