"""The compiled build (raftsim/compiled.py): used only with the sources it was built
from, never partly, and the same traces byte for byte as plain Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftsim import compiled
from raftsim.compiled import COMPILED_MODULES, MANIFEST, loadable

REPO = Path(__file__).resolve().parent.parent
ABI = ".cpython-test.so"


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A source tree and a build of it (extension files whose contents do not matter:
    ``loadable`` only decides whether they may be used)."""
    monkeypatch.setattr(compiled, "_abi", lambda: ABI)
    root = tmp_path / "src"
    for name in COMPILED_MODULES:
        source = root / (name.replace(".", "/") + ".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {name}\n")
    (root / "raftsim" / "ui.py").write_text("# not compiled, but part of the package\n")
    directory = tmp_path / "build"
    extensions = {name: name.replace(".", "/") + ABI for name in COMPILED_MODULES}
    extensions["abc123__mypyc"] = "abc123__mypyc" + ABI
    for file in extensions.values():
        (directory / file).parent.mkdir(parents=True, exist_ok=True)
        (directory / file).write_bytes(b"")
    (directory / MANIFEST).write_text(json.dumps({
        "abi": ABI, "sources": compiled._digests(root), "extensions": extensions}))
    return root, directory


def test_a_fresh_build_is_used_whole(build: tuple[Path, Path]) -> None:
    root, directory = build
    found = loadable(directory, root)
    assert set(found) == {*COMPILED_MODULES, "abc123__mypyc"}
    assert found["raftsim.core.node"] == directory / ("raftsim/core/node" + ABI)


@pytest.mark.parametrize("edit", ["compiled module", "other module", "new module",
                                  "deleted module"])
def test_a_build_is_not_used_once_any_source_of_the_package_changed(
        build: tuple[Path, Path], edit: str) -> None:
    root, directory = build
    if edit == "compiled module":
        (root / "raftsim/core/log.py").write_text("# edited\n")
    elif edit == "other module":
        (root / "raftsim/ui.py").write_text("# edited\n")
    elif edit == "new module":
        (root / "raftsim/new.py").write_text("")
    else:
        (root / "raftsim/ui.py").unlink()
    assert loadable(directory, root) == {}


def test_a_build_for_another_interpreter_is_not_used(
        build: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, directory = build
    monkeypatch.setattr(compiled, "_abi", lambda: ".cpython-399-other.so")
    assert loadable(directory, root) == {}


@pytest.mark.parametrize("damage", ["no manifest", "manifest not json", "manifest a list",
                                    "extension missing", "module not built"])
def test_an_incomplete_or_damaged_build_is_not_used(
        build: tuple[Path, Path], damage: str) -> None:
    root, directory = build
    manifest = directory / MANIFEST
    if damage == "no manifest":
        manifest.unlink()
    elif damage == "manifest not json":
        manifest.write_text("{")
    elif damage == "manifest a list":
        manifest.write_text("[]")
    elif damage == "extension missing":
        (directory / ("raftsim/sim/network" + ABI)).unlink()
    else:
        data = json.loads(manifest.read_text())
        del data["extensions"]["raftsim.runtime.server"]
        manifest.write_text(json.dumps(data))
    assert loadable(directory, root) == {}


def _run(script: str, **env: str) -> str:
    """Run ``script`` in a new interpreter with this environment, less the switch
    (this suite may run with ``RAFTSIM_COMPILED=0``), plus ``env``."""
    inherited = {key: value for key, value in os.environ.items()
                 if key != compiled.ENVIRONMENT_SWITCH}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
        env={**inherited, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


_WHICH = ("import raftsim.compiled as c, raftsim.core.node as n; "
          "print(c.active(), n.__file__.endswith('.py'))")


def test_the_environment_switch_runs_plain_python() -> None:
    assert _run(_WHICH, RAFTSIM_COMPILED="0").split() == ["False", "True"]


def test_a_fresh_build_in_the_environment_is_used_by_import_raftsim() -> None:
    """``make test`` builds one, so here the compiled modules run; without a compiler
    there is none, and plain Python runs. Either way ``active`` says which."""
    fresh, active, plain = _run(
        "import raftsim.compiled as c, raftsim.core.node as n; "
        "print(bool(c.loadable(c.default_directory())), c.active(), "
        "n.__file__.endswith('.py'))").split()
    assert (fresh, active, plain) in {("True", "True", "False"), ("False", "False", "True")}


def test_plain_python_matches_every_scenario_golden() -> None:
    """The suite runs the compiled build when one exists (``make test`` builds it) and
    checks every scenario's golden digest with it; this runs them as plain Python, so
    both builds are held to the same traces byte for byte."""
    scenarios = sorted(str(path) for path in (REPO / "scenarios").glob("*.toml"))
    result = subprocess.run(
        [sys.executable, "-m", "raftsim.cli", "run", "--check-golden", "--quiet",
         *scenarios], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "RAFTSIM_COMPILED": "0"}, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_build_that_fails_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "raftsim.cli", "compile", "--directory",
         str(blocker / "build")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1
    assert "the compiled build failed" in result.stderr
    assert "raftsim runs as plain Python" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def test_mypy_warns_of_unreachable_code_in_every_compiled_module() -> None:
    """What mypy narrows, the compiled build trusts: pyproject.toml makes unreachable
    code an error in exactly the compiled modules (a module added to the build without
    it would not be checked)."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    checked = [override for override in config["tool"]["mypy"]["overrides"]
               if override.get("warn_unreachable")]
    assert [set(override["module"]) for override in checked] == [set(COMPILED_MODULES)]


_FUZZ_SEEDS = (
    "import json; from raftsim.check.fuzz import run_seed; import raftsim.compiled as c; "
    "print(json.dumps([c.active(), [[r.seed, r.verdict, r.digest, r.errors] "
    "for r in map(run_seed, range(12))]]))")


def test_fuzz_seeds_run_the_same_in_both_builds_without_errors() -> None:
    """Random faults (crashes, partitions, disk stalls and failures, API calls) reach
    the corners the scenarios do not: both builds must give every seed the same verdict
    and trace digest, and neither may raise inside a server (seed 4 once did, compiled:
    a timer mypy believed was None)."""
    compiled_active, compiled_runs = json.loads(_run(_FUZZ_SEEDS))
    plain_active, plain_runs = json.loads(_run(_FUZZ_SEEDS, RAFTSIM_COMPILED="0"))
    assert not plain_active
    assert compiled_runs == plain_runs
    assert [run for run in plain_runs if run[3]] == []
    assert {run[1] for run in plain_runs} == {"ok"}
