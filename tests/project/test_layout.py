"""The layout rules hold: the suite runs from any clone folder name, the pack leaves sys.path alone,
no module imports another module's private names, library modules stay small, and the code passes
the project's ruff configuration."""
import ast
import shutil
import subprocess
import sys

import pytest

from memo_testing.paths import REPO

MAX_LINES = 420


def library_modules():
    return sorted(p for p in (REPO / "memo_model").rglob("*.py"))


def test_no_private_names_cross_modules():
    crossing = []
    for path in library_modules() + sorted((REPO / "nodes").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                crossing += [f"{path.relative_to(REPO)}: {a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing, crossing


def test_library_modules_stay_small():
    big = [f"{p.relative_to(REPO)}: {n}" for p in library_modules()
           if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not big, f"split these modules (over {MAX_LINES} lines): {big}"


def test_importing_the_pack_leaves_sys_path_alone():
    from memo_testing.pack import API_DOUBLE

    code = (f"import asyncio, importlib.util as u, sys; sys.path.insert(0, r'{API_DOUBLE}'); before = list(sys.path); "
            f"s = u.spec_from_file_location('pack_x', r'{REPO / '__init__.py'}', "
            f"submodule_search_locations=[r'{REPO}']); m = u.module_from_spec(s); sys.modules['pack_x'] = m; "
            "s.loader.exec_module(m); assert sys.path == before, sys.path; "
            "assert 'memo_model' not in sys.modules, 'the pack imported a global memo_model'; "
            "print(len(asyncio.run(asyncio.run(m.comfy_entrypoint()).get_node_list())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 14


@pytest.mark.slow
def test_suite_runs_from_a_folder_with_a_hyphen(tmp_path):
    """Cloned as the README says (`memo-talking-head`), pytest imports the tests, the pack and the library."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "memo-talking-head"
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_identity.py",
                          "tests/nodes/test_nodes.py::test_import_is_cheap_and_registers_nothing_heavy"],
                         cwd=clone, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout


def test_ruff_passes():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements-test.txt)")
    out = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]


def test_pyproject_and_requirements_list_the_same_runtime_dependencies():
    import re

    import tomllib

    def names(lines):
        return {re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower() for line in lines
                if line.strip() and not line.strip().startswith(("#", "-r"))}

    declared = names(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    declared.discard("comfyui-frontend-package")   # the registry's frontend range, not a runtime dependency
    required = names(line.split("#")[0] for line in (REPO / "requirements.txt").read_text().splitlines())
    assert declared == required
    assert "torch" not in declared        # ComfyUI provides torch; listing it pulls a CUDA build over it


# folders of tests/ that are not a memo_model package: the node pack, the golden data end to end, the
# checkout as a whole (docs, packaging, scripts, benchmarks), the opt-in real ComfyUI
OTHER_TEST_FOLDERS = {"nodes", "parity", "project", "comfyui"}


def test_tests_mirror_the_packages():
    """A test module sits in the folder of the package it tests (tests/audio for memo_model.audio, ...),
    a top-level one tests a top-level memo_model module of its name; every package has its folder."""
    packages = {p.parent.name for p in (REPO / "memo_model").glob("*/__init__.py")}
    tests = REPO / "tests"
    folders = {p.parent.relative_to(tests).parts[0] for p in tests.rglob("test_*.py") if p.parent != tests}
    assert folders <= packages | OTHER_TEST_FOLDERS, sorted(folders - packages - OTHER_TEST_FOLDERS)
    assert packages <= folders, f"no tests folder for {sorted(packages - folders)}"
    for top in tests.glob("test_*.py"):
        assert (REPO / "memo_model" / f"{top.stem[5:]}.py").is_file(), \
            f"{top.name}: move it into the folder of the package it tests"
