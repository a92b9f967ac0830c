"""The pack as the Comfy registry and pip see it.

* pyproject.toml: the registry fields comfy-cli reads ([tool.comfy], the frontend range, classifiers,
  licence, icon) and a setuptools configuration that installs the library (`pip install .`).
* The registry archive: `.comfyignore` applied to the files git tracks gives exactly what users run
  (checked with git's own ignore rules, no comfy-cli needed), and `comfy node validate` / `comfy node
  pack` agree when comfy-cli is there (`COMFY_CLI=/path/to/comfy`, or `comfy` on PATH, or comfy-cli
  importable here; `pip install comfy-cli` in a venv of its own).
* The registry's standards on every shipped Python file, read with `ast` (comments and strings
  cannot fool it): no eval/exec, no processes spawned (so no pip from code), no network module
  imported when ComfyUI imports the pack.

Everything that builds or packs works on a copy of the working tree in a temporary folder.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from memo_testing.paths import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT, COMFY = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]

# Top-level entries of the repository: what the archive ships, and what stays in development.
SHIPPED = {"__init__.py", "nodes", "web", "workflows", "example_inputs", "memo_model", "scripts", "docs",
           "README.md", "LICENSE", "requirements.txt", "pyproject.toml", "icon.png"}
DEVELOPMENT = {"tests", "benchmarks", ".ci", "pytest.ini", "requirements-test.txt", ".gitignore", ".comfyignore"}
NEVER = re.compile(r"(^|/)(__pycache__/|node\.zip$|\.DS_Store$)|\.py[cod]$"
                   r"|^workflows/[^/]+\.py$")               # the workflows' generator: a development tool

FRONTEND = "comfyui-frontend-package"
TESTED_FRONTENDS = ("1.27.10", "1.35.9", "1.58.1")
MIN_COMFYUI = "0.3.64"                      # the oldest host tested; V3 nodes through comfy_api.v0_0_2
SPEC = re.compile(r"^(==|>=|<=|!=|~=|>|<)?\s*\d+\.\d+\.\d+$")    # what comfy-cli accepts per comma part
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}


def top(path: str) -> str:
    return path.split("/", 1)[0]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def lower_bound(spec: str) -> str:
    """'>=1.2.3' (possibly among other comma parts) -> '1.2.3'."""
    found = [p.strip()[2:].strip() for p in spec.split(",") if p.strip().startswith(">=")]
    assert len(found) == 1, f"expected one '>=' lower bound in {spec!r}"
    return found[0]


# --------------------------------------------------------------------------- pyproject.toml

def test_project_fields_meet_the_registry_specification():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name)
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"]), "semantic version X.Y.Z"
    assert PROJECT["urls"]["Repository"].startswith("https://github.com/")
    assert COMFY["PublisherId"] and COMFY["DisplayName"]
    classifiers = PROJECT["classifiers"]
    systems = [c.split(" :: ", 1)[1] for c in classifiers if c.startswith("Operating System :: ")]
    assert systems and all(s.startswith(OS_PREFIXES) for s in systems)
    accelerators = [c.split(" :: ", 1)[1] for c in classifiers if c.startswith("Environment ::")]
    assert accelerators and set(accelerators) <= ACCELERATORS, "comfy-cli drops them all if one is unknown"


def test_licence_is_apache_as_an_spdx_expression_with_its_file():
    # a string, not a table: setuptools 77+ warns about the table form; comfy-cli reads either
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"]), "PEP 639: expression or classifier"


def test_versions_of_comfyui_and_the_frontend():
    spec = COMFY["requires-comfyui"]
    assert all(SPEC.match(part.strip()) for part in spec.split(","))
    assert lower_bound(spec) == MIN_COMFYUI
    frontend = [d for d in PROJECT["dependencies"] if d.startswith(FRONTEND)]
    assert len(frontend) == 1, "comfy-cli reads the frontend range from one [project] dependency"
    rng = frontend[0][len(FRONTEND):]
    assert all(SPEC.match(part.strip()) for part in rng.split(",")), f"comfy-cli would drop {rng!r}"
    low = version_tuple(lower_bound(rng))
    assert low == version_tuple(TESTED_FRONTENDS[0])
    uppers = [p.strip() for p in rng.split(",") if p.strip().startswith(("<", "=="))]
    assert all(version_tuple(re.sub(r"^[<=]+", "", u)) >= version_tuple(TESTED_FRONTENDS[-1]) for u in uppers)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_icon_is_shipped_square_and_linked_from_the_repository():
    repo = PROJECT["urls"]["Repository"].removeprefix("https://github.com/").rstrip("/")
    prefix = f"https://raw.githubusercontent.com/{repo}/main/"
    assert COMFY["Icon"].startswith(prefix), COMFY["Icon"]
    icon = REPO / COMFY["Icon"][len(prefix):]
    assert icon.is_file()
    w, h = png_size(icon)
    assert w == h and 64 <= w <= 400, f"the registry wants a square icon of at most 400 px, got {w}x{h}"


def test_setuptools_installs_the_library_only():
    """`pip install .`: memo_model and every subpackage; never `nodes` (it would shadow ComfyUI's
    nodes.py) nor the tests."""
    from setuptools import find_packages

    cfg = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(REPO), include=cfg["include"], exclude=cfg.get("exclude", ())))
    library = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "memo_model").rglob("__init__.py")}
    assert found == library and "memo_model.apps" in found
    script = PROJECT["scripts"]["memo-talking-head"]
    module, func = script.split(":")
    assert (REPO / (module.replace(".", "/") + ".py")).is_file() and func == "main"


# --------------------------------------------------------------------------- a copy of the working tree

@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    """The working tree's files (tracked, plus new ones git does not ignore) in a fresh git repository,
    so packing and building leave nothing in this checkout."""
    listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                             capture_output=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout: the archive is made from git's file list")
    copy = tmp_path_factory.mktemp("pack") / "memo-talking-head"
    for name in sorted(set(listing.stdout.decode().split("\0")) - {""}):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    return copy


def git_files(repo: Path, *args) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z", *args], cwd=repo, capture_output=True, check=True)
    return set(out.stdout.decode().split("\0")) - {""}


@pytest.fixture(scope="module")
def shipped(tree_copy):
    """The archive's file list by git's ignore rules: tracked files not matched by .comfyignore."""
    return git_files(tree_copy) - git_files(tree_copy, "--cached", "--ignored", "--exclude-from=.comfyignore")


def expected_members(files: set[str]) -> set[str]:
    return {f for f in files if top(f) in SHIPPED and not NEVER.search(f)}


def test_every_top_level_entry_is_shipped_or_development_only(tree_copy):
    entries = {top(f) for f in git_files(tree_copy)}
    unknown = entries - SHIPPED - DEVELOPMENT
    assert not unknown, f"decide whether these ship (SHIPPED / DEVELOPMENT above): {sorted(unknown)}"


def check_archive(members: set[str], tree: set[str]) -> None:
    """The contract of the registry archive, for git's rules and for comfy-cli's node.zip."""
    expected = expected_members(tree)
    assert members == expected, f"missing: {sorted(expected - members)[:20]}; extra: {sorted(members - expected)[:20]}"
    for entry in ("__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md", "icon.png",
                  "web/js/memo_nodes.js", "scripts/memo_api.py", "memo_model/__main__.py", "nodes/__init__.py"):
        assert entry in members, entry
    from memo_testing.pack import node_classes

    node_ids = node_classes()
    assert {f"web/docs/{n}.md" for n in node_ids} <= members, "help pages"
    assert {f for f in tree if f.startswith(("nodes/", "memo_model/", "workflows/", "example_inputs/",
                                              "web/docs/images/")) and not NEVER.search(f)} <= members
    assert any(f.startswith("workflows/api/") for f in members)
    leaked = sorted(f for f in members if top(f) in DEVELOPMENT or NEVER.search(f))
    assert not leaked, leaked


def test_comfyignore_ships_what_users_run(tree_copy, shipped):
    check_archive(shipped, git_files(tree_copy))


# --------------------------------------------------------------------------- comfy-cli

def comfy_cli() -> list[str]:
    exe = os.environ.get("COMFY_CLI") or shutil.which("comfy")
    if exe:
        return [exe]
    if importlib.util.find_spec("comfy_cli") is not None:
        return [sys.executable, "-m", "comfy_cli"]
    pytest.skip("comfy-cli not found: set COMFY_CLI=/path/to/comfy (pip install comfy-cli in a venv of its "
                "own), put `comfy` on PATH, or install it here")


def run_comfy(tree: Path, *args: str) -> str:
    out = subprocess.run([*comfy_cli(), "--skip-prompt", "--no-json", "node", *args], cwd=tree,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    return text


def test_comfy_node_validate_passes_without_warnings(tree_copy):
    text = run_comfy(tree_copy, "validate")
    assert "All validation checks passed" in text, text
    assert "warning" not in text.lower(), text      # comfy-cli warns and drops fields it cannot read


def test_comfy_node_pack_archive(tree_copy, shipped):
    run_comfy(tree_copy, "pack")
    with zipfile.ZipFile(tree_copy / "node.zip") as archive:
        members = {m for m in archive.namelist() if not m.endswith("/")}
    (tree_copy / "node.zip").unlink()
    assert members == shipped, "comfy-cli and git read .comfyignore differently"
    check_archive(members, git_files(tree_copy))


# --------------------------------------------------------------------------- pip

def test_wheel_installs_the_library_and_its_command(tree_copy, tmp_path):
    """`pip wheel --no-deps .` (this environment's setuptools, offline) gives memo_model with its
    metadata; installed elsewhere, `python -m memo_model --help` runs from the installed copy."""
    build = tmp_path / "wheel"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(build), str(tree_copy)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "SetuptoolsDeprecationWarning" not in out.stderr, out.stderr[-2000:]
    wheel, = build.glob("memo_talking_head-*.whl")
    with zipfile.ZipFile(wheel) as wh:
        names = set(wh.namelist())
        meta = wh.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = wh.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    library = {f for f in git_files(tree_copy) if f.startswith("memo_model/") and f.endswith(".py")}
    assert {n for n in names if not n.startswith("memo_talking_head-")} == library
    assert f"Version: {PROJECT['version']}" in meta and "License-Expression: Apache-2.0" in meta
    assert "Provides-Extra: batch" in meta and "Requires-Dist: torch" not in meta
    assert "memo-talking-head = memo_model.apps.cli:main" in entry_points
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-m", "memo_model", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "--tiny-demo" in run.stdout, run.stderr[-2000:]
    where = subprocess.run([sys.executable, "-c", "import memo_model; print(memo_model.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)


# --------------------------------------------------------------------------- .gitignore

@pytest.mark.parametrize("path", [".venv/bin/python", ".venv-test/bin/python", "demo.mp4", "memo_tiny_demo.mp4",
                                  "node.zip", "results/a.mp4", "shots/basic.png", "models/memo/x.json",
                                  "build/lib/x.py", "memo_talking_head.egg-info/PKG-INFO",
                                  "MEMO/long_00001_.mp4.memo-resume/state.safetensors"])
def test_gitignore_covers_what_the_commands_create(path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    assert out.returncode == 0, f"{path} is not ignored"


def test_gitignore_keeps_shipped_files():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("workflows/memo_basic.json", "example_inputs/memo_example_voice.wav", "icon.png",
                 "web/docs/images/MemoFacePrep_crop_vs_resize.png"):
        assert subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 1, path


# --------------------------------------------------------------------------- the registry's standards

NETWORK_MODULES = {"socket", "ssl", "urllib.request", "http.client", "requests", "httpx", "aiohttp", "urllib3",
                   "huggingface_hub", "ftplib", "smtplib", "websocket", "websockets"}
SPAWNERS = {("subprocess", None), ("os", "system"), ("os", "popen"), ("os", "startfile"), ("pty", None),
            ("os", "posix_spawn"), ("os", "posix_spawnp")}
SPAWN_PREFIXES = ("exec", "spawn")


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _module_level(tree: ast.Module):
    """Statements that run when the module is imported (not inside functions), nested blocks included."""
    todo = list(tree.body)
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield stmt
        for field in ("body", "orelse", "finalbody", "handlers"):
            todo.extend(getattr(stmt, field, []) or [])


def standard_violations(source: str, imported_by_comfyui: bool) -> list[str]:
    """What the registry forbids in `source`: eval/exec, spawning processes (pip from code), and,
    for code ComfyUI imports, a network module imported at import time."""
    tree = ast.parse(source)
    found = []
    aliases = {}                       # local name -> module, for `import subprocess as sp` / `from os import system`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                if a.name.split(".")[0] in ("pip", "ensurepip"):
                    found.append(f"line {node.lineno}: imports {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            if node.module.split(".")[0] in ("pip", "ensurepip"):
                found.append(f"line {node.lineno}: imports from {node.module}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        if full in ("eval", "exec", "builtins.eval", "builtins.exec", "compile", "builtins.compile", "__import__"):
            found.append(f"line {node.lineno}: calls {full}()")
        module, _, func = full.rpartition(".")
        if (module.split(".")[0], None) in SPAWNERS or (module, func) in SPAWNERS or (
                module == "os" and func.startswith(SPAWN_PREFIXES)):
            found.append(f"line {node.lineno}: starts a process ({full})")
    if imported_by_comfyui:
        for stmt in _module_level(tree):
            names = ([a.name for a in stmt.names] if isinstance(stmt, ast.Import) else
                     [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else [])
            for mod in names:
                if any(mod == n or mod.startswith(n + ".") for n in NETWORK_MODULES):
                    found.append(f"line {stmt.lineno}: imports {mod} at import time")
    return found


def test_the_standards_checker_catches_what_it_should():
    bad = {
        "eval('1')": "calls eval",
        "import builtins\nbuiltins.exec('x = 1')": "calls builtins.exec",
        "import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'x'])": "process",
        "import subprocess as sp\nsp.run(['ls'])": "process",
        "from os import system\nsystem('pip install x')": "process",
        "import os\nos.execv('/bin/sh', ['sh'])": "process",
        "from pip._internal.cli.main import main": "imports from pip",
        "import requests": "at import time",
        "try:\n    from huggingface_hub import hf_hub_download\nexcept ImportError:\n    pass": "at import time",
    }
    for source, what in bad.items():
        found = standard_violations(source, imported_by_comfyui=True)
        assert any(what in f for f in found), (source, found)
    fine = ("# eval(x) in a comment\ns = 'exec(y) in a string'\n"
            "def f(model):\n    import requests\n    return model.eval()\n"
            "from urllib.parse import quote\n")
    assert standard_violations(fine, imported_by_comfyui=True) == []


def test_shipped_python_meets_the_registry_standards(tree_copy, shipped):
    """Scripts (scripts/) are programs of their own, not imported by ComfyUI: they may talk to a server."""
    problems = []
    for name in sorted(f for f in shipped if f.endswith(".py")):
        found = standard_violations((tree_copy / name).read_text(), imported_by_comfyui=top(name) != "scripts")
        problems += [f"{name}: {f}" for f in found]
    assert not problems, "\n".join(problems)
    assert sum(f.endswith(".py") for f in shipped) > 80


def test_comfy_cli_security_rules_pass_on_shipped_code(tree_copy, shipped):
    """The rules `comfy node validate` runs through ruff (S102 exec, S307 eval, E702 one-line
    statements), with this environment's ruff so CI checks them without comfy-cli."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements-test.txt)")
    files = sorted(f for f in shipped if f.endswith(".py"))
    out = subprocess.run([ruff, "check", "--no-cache", "--select", "S102,S307,E702", "--output-format", "concise",
                          *files], cwd=tree_copy, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
