"""Every command the README and docs/*.md give runs, so that a rename cannot break one unnoticed.

What counts as a documented command (`documented_commands`): every line of a fenced ```bash, ```sh,
```shell or ```console block (console: the `$ ` lines), the lines of an untagged fenced block that
start with a program, and every inline code span of two words or more that starts with a program.
A program is one of PROGRAMS (also as a path, `~/venv/bin/pip`) or `$SOMETHING_PYTHON`, after any
`NAME=value` assignments; `ffmpeg`, named only as the reference the audio decoder matches, is not one.
Continuation lines are joined, comments dropped and spaces collapsed; a command given in several
places (or moved from the README to a docs page) is one command.

COMMANDS says, one line per command, how each is checked:
* Run: the command with bash in a fresh copy of the checkout, as a user runs it from the checkout
  root: `python` is this interpreter, tiny random models sit where the docs put the real ones
  (./models, ComfyUI's layout), the pictures and voices the docs name exist (synthetic), the network is off
  (HF_HUB_OFFLINE). `extra` is appended to the command (fast flags: --smoke, fewer steps); `check`
  asserts on what it did. Without a GPU, gpu_check runs its CPU mode; `gpu=True` entries need one.
* Offline: the command is not run (`why`); a check stands in for it. Pip: installing needs the
  network, so the requirement files and extras it names must exist and every requirement parse.
* Skip: cannot run here, with the reason.
A new documented command fails test_every_documented_command_has_an_entry until it gets a line;
an entry whose command left the docs fails test_every_entry_is_still_documented.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

from memo_testing.comfyui_api_stub import ComfyApiStub
from memo_testing.paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PROGRAMS = {"python", "python3", "pip", "pip3", "pytest", "git", "hf", "huggingface-cli", "ray", "comfy", "apt-get",
            "apt", "brew", "cd", "bash", "sh", "source", "flock", "env", "uv", "docker", "kubectl", "curl", "wget"}
SHELL_BLOCKS = {"bash", "sh", "shell", "console", "zsh"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")


# ----------------------------------------------------------------------------------- extraction

def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:            # an unbalanced quote in prose
        return text.split()


def starts_with_program(text: str) -> bool:
    words = _words(text)
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return False
    first = words[0]
    return first.rsplit("/", 1)[-1] in PROGRAMS or bool(re.fullmatch(r"\$\{?[A-Z_]*PYTHON\}?", first))


def _drop_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def normalise(command: str) -> str:
    return " ".join(command.split())


def _block_commands(lang: str, lines: list[str]) -> list[tuple[int, str]]:
    """(index of the line it starts on, command) for each command of a fenced block."""
    commands, pending, first = [], "", 0
    for index, raw in enumerate(lines):
        line = raw.strip()
        if lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        line = _drop_comment(line).rstrip()
        if not line and not pending:
            continue
        if not pending:
            first = index
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command, pending = normalise(pending + line), ""
        if command and (lang in SHELL_BLOCKS or starts_with_program(command)):
            commands.append((first, command))
    return commands


def documented_commands(docs=DOCS) -> dict[str, list[str]]:
    """{command: ["README.md:12", ...]} for every command the docs give."""
    found: dict[str, list[str]] = {}

    def add(command: str, doc: Path, line: int):
        name = doc.relative_to(REPO) if doc.is_relative_to(REPO) else doc.name
        found.setdefault(command, []).append(f"{name}:{line}")

    def prose(doc: Path, paragraph: list[tuple[int, str]]):
        text, starts = "", []
        for number, line in paragraph:          # inline code may wrap onto the next line
            starts.append((len(text), number))
            text += line + " "
        for match in INLINE.finditer(text):
            span = normalise(match.group(2))
            if len(span.split()) >= 2 and starts_with_program(span):
                add(span, doc, max(n for offset, n in starts if offset <= match.start()))

    for doc in docs:
        lines = doc.read_text().splitlines()
        paragraph: list[tuple[int, str]] = []
        i = 0
        while i < len(lines):
            fence = FENCE.match(lines[i])
            if fence or not lines[i].strip():
                prose(doc, paragraph)
                paragraph = []
            else:
                paragraph.append((i + 1, lines[i].strip()))
            if fence:
                marker, lang = fence.group(1), fence.group(2).lower()
                end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(marker)), len(lines))
                if lang in SHELL_BLOCKS or not lang:
                    for index, command in _block_commands(lang, lines[i + 1:end]):
                        add(command, doc, i + 2 + index)
                i = end
            i += 1
        prose(doc, paragraph)
    return found


# ----------------------------------------------------------------------------------- how each is checked

@dataclass
class Done:
    """What a Run left: the checkout copy it ran in, its output, the stand-in ComfyUI it talked to."""
    cwd: Path
    stdout: str
    stderr: str
    stub: Optional[ComfyApiStub] = None

    def json(self) -> dict:
        return json.loads(self.stdout[self.stdout.index("{"):])


@dataclass
class Run:
    extra: str = ""                                   # appended to the command: fast flags
    check: Optional[Callable[[Done], None]] = None
    fast: bool = False                                # in the fast lane (otherwise marked slow)
    stub: bool = False                                # a stand-in ComfyUI HTTP API at $COMFYUI_URL
    official: bool = False                            # ../memo = $MEMO_OFFICIAL_DIR, a memoavatar/memo checkout
    gpu: bool = False                                 # needs a CUDA device
    before: Optional[Callable[[Path], None]] = None   # prepares the checkout copy


@dataclass
class Offline:
    why: str                                          # why the command itself does not run
    check: Callable[[str], None] = field(repr=False)


@dataclass
class Skip:
    reason: str


SHARED = Path(os.environ.get("MEMO_SHARED_DIR", REPO.parent / "shared"))
OFFICIAL = os.environ.get("MEMO_OFFICIAL_DIR")
SPEECH_SECONDS, LONG_SECONDS = 0.5, 6.0               # the docs' example voices (long.wav: two chunked runs)
SPEECH_FRAMES = math.ceil(SPEECH_SECONDS * 30)


def check_requirements_file(path: Path) -> None:
    from packaging.requirements import Requirement

    assert path.is_file(), f"{path.relative_to(REPO)} does not exist"
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            check_requirements_file(path.parent / line.split(None, 1)[1])
        elif line:
            Requirement(line)                         # raises on a malformed requirement


def check_pip(command: str, clone: str = "") -> None:
    """The pip installs of `command`, offline: files and extras exist, requirements parse. `clone`:
    the folder name the docs clone this repository into."""
    from packaging.requirements import Requirement

    for part in command.split("&&"):
        words = _words(part)
        names = [w.rsplit("/", 1)[-1] for w in words]
        if "pip" not in names and "pip3" not in names:
            continue
        args = iter(words[names.index("install") + 1:])
        for arg in args:
            if arg in ("-r", "--requirement"):
                check_requirements_file(REPO / Path(next(args)).relative_to(clone or "."))
            elif arg in ("-i", "--index-url", "--extra-index-url", "-c", "--constraint"):
                next(args)
            elif arg.startswith("-"):
                continue
            elif arg.startswith("."):
                import tomllib

                extras = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", arg)
                assert extras, f"pip install {arg}: not this project"
                project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
                for extra in filter(None, (extras.group(1) or "").split(",")):
                    assert extra in project.get("optional-dependencies", {}), f"pyproject.toml has no extra {extra!r}"
            else:
                Requirement(arg)


def Pip(clone: str = "") -> Offline:
    return Offline("installing needs the network", lambda command: check_pip(command, clone))


def ci_runs_it(command: str) -> None:
    """`.ci/run` (what CI runs) runs each part of the documented test command."""
    ci = [normalise(line) for line in (REPO / ".ci" / "run").read_text().splitlines()]
    for part in map(normalise, command.split("&&")):
        if part.startswith("pip install "):
            assert any("pip install" in line and part[len("pip install "):] in line for line in ci), part
        else:
            assert any(part in line for line in ci), f".ci/run does not run {part!r}"
    check_pip(command)


def marker_registered(command: str) -> None:
    marker = re.search(r'-m "not (\w+)"', command).group(1)
    assert re.search(rf"^\s*{marker}:", (REPO / "pytest.ini").read_text(), re.M), f"marker {marker!r} not registered"


def the_printed_vae_command(command: str) -> None:
    """The command is the one the pack prints for a missing VAE in ComfyUI/models (download_command)."""
    from memo_model.apps.download import download_command, find_missing

    (printed,) = download_command(find_missing(Path("ComfyUI") / "models", ["vae"]))
    assert shlex.split(printed) == shlex.split(command), printed


def names_existing_test(command: str) -> None:
    test = next(w for w in command.split() if w.startswith("tests/"))
    assert (REPO / test).is_file(), test


# ----------------------------------------------------------------------------------- checks

def usage(done: Done) -> None:
    assert done.stdout.startswith("usage:"), done.stdout[:300]


def mp4(name: str, frames: Optional[int] = None) -> Callable[[Done], None]:
    def check(done: Done) -> None:
        from memo_model.output.probe import probe_video

        info = probe_video(done.cwd / name)
        assert info.num_frames == frames if frames else info.num_frames > 0, info
        assert info.audio_seconds and info.audio_seconds > 0, info
    return check


def venv_active(folder: str) -> Callable[[Done], None]:
    def check(done: Done) -> None:
        assert Path(done.stdout.strip().splitlines()[-1]) == done.cwd / folder / "bin" / "python", done.stdout
    return check


def batch_done(done: Done) -> None:
    report = json.loads((done.cwd / "results" / "batch_report.json").read_text())
    assert [job["status"] for job in report["jobs"]] == ["done"], report["jobs"]
    mp4("results/lesson01.mp4", frames=SPEECH_FRAMES)(done)


def plans(count: int) -> Callable[[Done], None]:
    def check(done: Done) -> None:
        rows = done.json()["plans"]
        assert len(rows) == count and all(r["peak_gb"] > r["weights_resident_gb"] > 0 for r in rows), rows
    return check


def validation(done: Done) -> None:
    v = done.json()["validation"]
    assert abs(v["plan_vs_tracked"]) < 0.15, v       # the plan follows the live bytes of the real run


def gpu_report(done: Done) -> None:
    report = done.json()
    parity = report["parity"]
    if "skipped" not in parity:
        assert parity["default_pass"] and parity["low_pass"], parity
    runs = report["runs"]
    assert runs["model_size"] == "tiny" and set(runs["configs"]) == {"default", "low", "fp8", "partial"}
    for name, entry in runs["configs"].items():
        assert entry["seconds_per_frame"] > 0 and entry["max_memory_allocated_gb"] > 0, name
        assert entry["planned_peak_gb"] > 0, name
    if runs["device"] == "cpu":                       # weights on the device: the plan tracks the measurement
        for name in ("default", "low", "fp8"):
            assert abs(runs["configs"][name]["planned_vs_measured"]) < 0.15, runs["configs"][name]
    fp8, default = (runs["configs"][n]["max_memory_allocated_gb"] for n in ("fp8", "default"))
    assert fp8 < default


def official_beside_ours(done: Done) -> None:
    official = done.json()["official"]
    assert official["seconds_per_frame"] > 0 and official["max_memory_allocated_gb"] > official["weights_gb"] > 0


def official_plans(done: Done) -> None:
    rows = done.json()["plans"]
    assert rows and all(r["official_peak_gb"] > 0 and r["ours_default_peak_gb"] > 0 for r in rows), rows


def same_frames_as_official(done: Done) -> None:
    assert done.json()["max_abs_diff_ours_vs_official"] < 5e-5


def runs_of(key: str, count: int) -> Callable[[Done], None]:
    def check(done: Done) -> None:
        rows = done.json()[key]
        assert len(rows) == count, rows
    return check


def long_video(done: Done) -> None:
    report = done.json()
    assert [r["audio_s"] for r in report["runs"]] == [0.5, 1.0], report
    assert all(r["peak_rss_mib"] > 0 and r["frames"] == math.ceil(r["audio_s"] * 30) for r in report["runs"])
    assert report["peak_ratio_longest_to_shortest"]["tiny"] > 0


def dialogue(done: Done) -> None:
    runs = done.json()["runs"]
    assert [r["faces"] for r in runs] == [1, 2] and all(r["frames"] == 15 for r in runs), runs  # --smoke: 0.5 s


def remove_generated(*patterns: str) -> Callable[[Path], None]:
    """Removes the files a generator writes, so that its check sees them written again."""
    def before(checkout: Path) -> None:
        for pattern in patterns:
            for path in checkout.glob(pattern):
                path.unlink()
    return before


def rewrote(pattern: str) -> Callable[[Done], None]:
    """The command wrote every file of `pattern` again, the same bytes as committed."""
    def check(done: Done) -> None:
        committed = sorted(p.relative_to(REPO) for p in REPO.glob(pattern))
        assert committed and sorted(p.relative_to(done.cwd) for p in done.cwd.glob(pattern)) == committed
        for rel in committed:
            assert (done.cwd / rel).read_bytes() == (REPO / rel).read_bytes(), f"{rel} differs from the committed one"
    return check


def rewrote_pictures(done: Done) -> None:
    """icon.png and the help pages' pictures are there again, at their committed sizes."""
    from PIL import Image

    for rel in ["icon.png", *(p.relative_to(REPO) for p in (REPO / "web/docs/images").glob("*.png"))]:
        with Image.open(done.cwd / rel) as made, Image.open(REPO / rel) as committed:
            assert made.size == committed.size, rel   # pixels: tests/nodes/test_help_pages.py


def api_basic(done: Done) -> None:
    stub = done.stub
    assert stub.uploads == {name: (done.cwd / name).read_bytes() for name in ("me.png", "talk.mp3")}
    (prompt,) = stub.prompts
    loaders = {n["class_type"]: n["inputs"] for n in prompt.values()}
    assert loaders["LoadImage"]["image"] == "me.png" and loaders["MemoLoadAudio"]["audio"] == "talk.mp3"
    _downloaded(done, 1)


def api_crop(done: Done) -> None:
    (prompt,) = done.stub.prompts
    nodes = {n["class_type"]: n["inputs"] for n in prompt.values()}
    assert nodes["LoadImage"]["image"] == "wide.jpg" and nodes["LoadAudio"]["audio"] == "talk.wav"
    assert nodes["MemoSampler"]["seed"] == 7 and nodes["MemoSampler"]["steps"] == 25
    assert nodes["MemoFacePrep"]["mode"] == "crop" and "SaveVideo" in nodes
    _downloaded(done, 1)


def api_until_done(done: Done) -> None:
    runs = math.ceil(LONG_SECONDS * 30 / 160)           # memo_long_chunks renders 160 frames per run
    assert len(done.stub.prompts) == runs > 1
    assert f"state: {round(LONG_SECONDS * 30)} of {round(LONG_SECONDS * 30)} frames" in done.stdout
    _downloaded(done, runs)


def _downloaded(done: Done, count: int) -> None:
    saved = sorted((done.cwd / "results").rglob("*.mp4"))
    assert len(saved) == count and all(p.read_bytes() == done.stub.served[p.name] for p in saved), saved
    assert done.stdout.rstrip().endswith("done")


# ----------------------------------------------------------------------------------- the table

NEEDS_COMFYUI = "needs a ComfyUI checkout and its python (COMFYUI_DIR, COMFYUI_PYTHON): the comfyui lane"
NEEDS_CLUSTER = "starts or needs a Ray cluster (daemons and shared folders beyond one test)"
SUITE = "the suite this test is part of"

COMMANDS: dict[str, Run | Offline | Skip] = {
    "python3 -m venv .venv && . .venv/bin/activate": Run(" && command -v python", venv_active(".venv")),
    "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install -r requirements.txt": Pip(),
    "python -m memo_model --tiny-demo --output demo.mp4": Run(check=mp4("demo.mp4")),
    "pip install torch": Pip(),
    "python -m memo_model --help": Run(check=usage, fast=True),
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu": Pip(),
    "python -m memo_model --image portrait.jpg --audio speech.wav --output talk.mp4 --download":
        Run(" --size 64 --steps 1", mp4("talk.mp4", frames=SPEECH_FRAMES)),
    "python3 -m venv .venv-test && . .venv-test/bin/activate": Run(" && command -v python", venv_active(".venv-test")),
    "pip install torch==2.13.0 -r requirements-test.txt && HF_HUB_OFFLINE=1 python -m pytest -q":
        Offline(f"{SUITE}; CI runs it", ci_runs_it),
    'python -m pytest -q -m "not slow"': Offline(f"the fast lane of {SUITE}", marker_registered),
    "$COMFYUI_PYTHON -m pip install -r requirements.txt": Pip(),
    "apt-get install chromium": Skip("a system package: root and the network"),
    "$COMFYUI_PYTHON -m pip install playwright requests": Pip(),
    "COMFYUI_DIR=~/ComfyUI COMFYUI_PYTHON=~/ComfyUI/venv/bin/python python -m pytest -q tests/comfyui":
        Skip(NEEDS_COMFYUI),
    "MEMO_BROWSER_SHOTS=shots/ COMFYUI_DIR=... COMFYUI_PYTHON=... python -m pytest -q tests/comfyui/test_browser.py -s":
        Skip(NEEDS_COMFYUI + ", and Chromium with Playwright"),
    "COMFYUI_FRONTEND_ROOT=$PWD/fe-1.58.1/comfyui_frontend_package/static COMFYUI_DIR=~/ComfyUI "
    "COMFYUI_PYTHON=~/ComfyUI/venv/bin/python python -m pytest -q tests/comfyui": Skip(NEEDS_COMFYUI),
    "pip install --no-deps --target=fe-1.58.1 comfyui-frontend-package==1.58.1": Pip(),
    "COMFYUI_DIR=~/ComfyUI COMFYUI_PYTHON=~/ComfyUI/venv/bin/python python tests/comfyui/make_thumbnails.py":
        Skip(NEEDS_COMFYUI + ", and Chromium with Playwright; it rewrites the committed pictures"),
    "cd ComfyUI/custom_nodes": Skip("a ComfyUI installation's folder"),
    "git clone https://github.com/memo-comfyui/memo-talking-head":
        Skip("the network; tests/project/test_layout.py runs the suite from a folder of that name"),
    "path/to/ComfyUI/venv/bin/python -m pip install -r memo-talking-head/requirements.txt":
        Pip(clone="memo-talking-head"),
    "git -C ComfyUI/custom_nodes/memo-talking-head pull": Skip("a clone inside a ComfyUI installation; the network"),
    "comfy node install memo-talking-head": Skip("comfy-cli installs from the Comfy Registry: the network"),
    "hf download stabilityai/sd-vae-ft-mse-original vae-ft-mse-840000-ema-pruned.safetensors "
    "--local-dir ComfyUI/models/vae": Offline("the Hugging Face hub (network)", the_printed_vae_command),
    "hf download memoavatar/memo reference_net/config.json ... --local-dir ComfyUI/models/memo/memo":
        Skip("the Hugging Face hub (network); tests/apps/test_download.py checks the commands the loaders print"),
    "python workflows/build_workflows.py":
        Run(check=rewrote("workflows/**/*.json"), fast=True, before=remove_generated("workflows/**/*.json")),
    "python main.py --listen 127.0.0.1": Skip("ComfyUI's own main.py"),
    "python scripts/memo_api.py --image me.png --audio talk.mp3 --out results/":
        Run(check=api_basic, fast=True, stub=True),
    "python scripts/memo_api.py --workflow workflows/api/memo_crop_pasteback.api.json --image wide.jpg "
    "--audio talk.wav --seed 7 --set MemoSampler.steps=25 --out results/": Run(check=api_crop, fast=True, stub=True),
    "python scripts/memo_api.py --workflow workflows/api/memo_long_chunks.api.json --image me.png "
    "--audio long.wav --until-done --out results/": Run(check=api_until_done, fast=True, stub=True),
    "hf download": Skip("names the command the loaders print (network); tests/apps/test_download.py checks them"),
    "python -m memo_model batch": Run(" --help", usage, fast=True),
    'pip install "ray[default]"': Pip(),
    'pip install ".[batch]"': Pip(),
    "python -m memo_model batch jobs.jsonl --out results/ --models models --steps 20":
        Run(" --size 64 --steps 1", batch_done),
    "ray start --head --port=6379": Skip(NEEDS_CLUSTER),
    "ray start --address=A:6379": Skip(NEEDS_CLUSTER),
    "python -m memo_model batch /shared/jobs.jsonl --out /shared/results --models /models --address auto":
        Skip(NEEDS_CLUSTER),
    "ray job submit -- python -m memo_model batch ...": Skip(NEEDS_CLUSTER),
    "pip install mediapipe": Pip(),
    "pip install insightface==2.1": Pip(),
    "python -m memo_model --image two.png --face 0=anna.wav --face 1=ben.wav --output dialogue.mp4":
        Run(" --size 64 --steps 1", mp4("dialogue.mp4", frames=SPEECH_FRAMES)),
    "python -m memo_model --tiny-demo --faces 2 --output dialogue_demo.mp4": Run(check=mp4("dialogue_demo.mp4")),
    "python -m benchmarks.memory_plan --table": Run(" --smoke", plans(6)),
    "python -m benchmarks.memory_plan --size 640x384 --dtype fp16 --memory low --weights model":
        Run(" --smoke", plans(1)),
    "python -m benchmarks.memory_plan --validate": Run(" --smoke", validation),
    "python -m benchmarks.gpu_check": Run(" --smoke", gpu_report),
    "python -m benchmarks.gpu_check --official ../memo":
        Run(" --smoke --no-parity --configs default", official_beside_ours, official=True),
    "git clone https://github.com/memoavatar/memo ../memo":
        Skip("the network; MEMO_OFFICIAL_DIR (such a checkout) runs the commands that use ../memo"),
    "python -m benchmarks.official_compare --official ../memo plan --size 64 128 256 512 768 --dtype fp32 bf16":
        Run(" --smoke", official_plans, official=True),
    "python -m benchmarks.official_compare --official ../memo measure --size 128":
        Run(" --smoke", same_frames_as_official, official=True),
    "MEMO_OFFICIAL_DIR=../memo pytest tests/project/test_official_compare.py":
        Offline(f"{SUITE} (it runs when MEMO_OFFICIAL_DIR is set)", names_existing_test),
    "COMFY_CLI=~/venv-cli/bin/comfy python -m pytest -q tests/project/test_registry.py":
        Offline(f"{SUITE} (comfy-cli runs in it when COMFY_CLI is set)", names_existing_test),
    "python -m memo_model": Run(" --help", usage, fast=True),
    "comfy node pack": Skip("comfy-cli; tests/project/test_registry.py runs it with COMFY_CLI set"),
    "comfy node publish": Skip("publishes to the registry: the network and the publisher's token"),
    "comfy node validate": Skip("comfy-cli; tests/project/test_registry.py runs it with COMFY_CLI set"),
    "python3 -m venv ~/venv-cli && ~/venv-cli/bin/pip install comfy-cli": Pip(),
    "pip install .": Pip(),
    "python tests/build_pack_images.py":
        Run(check=rewrote_pictures, fast=True, before=remove_generated("icon.png", "web/docs/images/*.png")),
    "python -m benchmarks.memory_plan --size 512 --dtype bf16": Run(" --smoke", plans(3)),
    "python -m benchmarks.bench_core": Run(" --smoke", runs_of("results", 1)),
    "python -m benchmarks.bench_long_video --pipeline fake --durations 10 120 600": Run(" --smoke", long_video),
    "python -m benchmarks.bench_dialogue": Run(" --smoke", dialogue),
    "python -m benchmarks.bench_dialogue --full-width --size 128 --device cuda": Run(" --smoke", dialogue, gpu=True),
}


# ----------------------------------------------------------------------------------- the tests

def test_every_documented_command_has_an_entry():
    missing = {c: where for c, where in documented_commands().items() if c not in COMMANDS}
    assert not missing, "documented commands without an entry in COMMANDS (say how to check each):\n" + "\n".join(
        f"  {where[0]}: {c}" for c, where in missing.items())


def test_every_entry_is_still_documented():
    stale = sorted(set(COMMANDS) - set(documented_commands()))
    assert not stale, "COMMANDS entries no longer in the docs (remove them):\n  " + "\n  ".join(stale)


def test_every_measuring_tool_is_documented_and_every_named_file_exists():
    commands = " ".join(documented_commands())
    tools = [p.stem for p in (REPO / "benchmarks").glob("*.py") if '__name__ == "__main__"' in p.read_text()]
    assert tools and all(f"python -m benchmarks.{t}" in commands for t in tools), tools
    named = set()
    for doc in DOCS:
        named |= set(re.findall(r"`((?:memo_model|nodes|tests|benchmarks|scripts|workflows|docs|web|example_inputs)"
                                r"/[\w./-]*)`", doc.read_text()))
        named |= {w for c in documented_commands([doc]) for w in c.split()
                  if re.match(r"(benchmarks|scripts|tests|workflows)/", w)}
    assert named
    missing = sorted(n for n in named if not (REPO / n).exists())
    assert not missing, f"the docs name files that do not exist: {missing}"


def test_extraction_finds_blocks_prose_and_continuations(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("Run `python -m tool --flag` or `--other`, wrapped: `pip\ninstall foo`.\n\n"
                   "```bash\n# comment\nA=1 python run.py \\\n    --long  # trailing\n```\n"
                   "```console\n$ hf download x\noutput line\n```\n```\nnot a command\ngit status\n```\n"
                   "```python\npython = 3\n```\n")
    found = documented_commands([doc])
    assert list(found) == ["python -m tool --flag", "pip install foo", "A=1 python run.py --long", "hf download x",
                           "git status"], found


def _checkout_files() -> list[str]:
    """The checkout's files as a fresh clone has them (plus new ones git does not ignore)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):   # not a git checkout (an unpacked archive)
        skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache"}
        listed = [p.relative_to(REPO).as_posix() for p in REPO.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(REPO).parts) and not p.parts[-2].startswith(".venv")]
    return [rel for rel in listed if rel]


def _copy_checkout(dest: Path) -> Path:
    for rel in _checkout_files():
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Tiny random models where the docs put the real ones, and the pictures and voices they name."""
    from PIL import Image

    from memo_model.apps.tiny_frontends import (
        demo_voice,
        write_demo_dialogue_picture,
        write_demo_portrait,
        write_demo_voice,
        write_tiny_models,
    )
    from memo_testing.audio_fakes import write_encoded

    root = tmp_path_factory.mktemp("documented")
    write_tiny_models(root / "models")                # ComfyUI's models folder: models/memo/..., models/vae/...
    files = root / "files"
    files.mkdir()
    portrait = write_demo_portrait(files / "me.png")
    Image.open(portrait).convert("RGB").save(files / "portrait.jpg", quality=92)
    Image.open(write_demo_portrait(files / "wide.png", width=384, height=216)).convert("RGB").save(files / "wide.jpg")
    (files / "wide.png").unlink()
    write_demo_voice(files / "speech.wav", seconds=SPEECH_SECONDS)
    write_demo_voice(files / "talk.wav", seconds=SPEECH_SECONDS)
    write_demo_voice(files / "long.wav", seconds=LONG_SECONDS)
    write_encoded(files / "talk.mp3", demo_voice(SPEECH_SECONDS, 22050), 22050, "mp3")
    write_demo_dialogue_picture(files / "two.png", faces=2)                  # the dialogue example
    write_demo_voice(files / "anna.wav", seconds=SPEECH_SECONDS, voice=0)
    write_demo_voice(files / "ben.wav", seconds=SPEECH_SECONDS, voice=1)
    (files / "jobs.jsonl").write_text(json.dumps({"image": "portrait.jpg", "audio": "speech.wav",
                                                  "output": "lesson01.mp4"}) + "\n")
    shims = root / "bin"                              # `python`, `python3`, `pytest` = this interpreter
    shims.mkdir()
    for name, run in (("python", ""), ("python3", ""), ("pytest", " -m pytest")):
        (shims / name).write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
        (shims / name).chmod(0o755)
    return root


PARAMS = [pytest.param(command, marks=[pytest.mark.slow] if isinstance(how, Run) and not how.fast else [], id=command)
          for command, how in COMMANDS.items()]


@pytest.mark.parametrize("command", PARAMS)
def test_documented_command_runs(command, world, tmp_path):
    how = COMMANDS[command]
    if isinstance(how, Skip):
        pytest.skip(f"{command}: {how.reason}")
    if isinstance(how, Offline):
        how.check(command)                            # the command is not run: how.why
        return
    if how.official and not OFFICIAL:
        pytest.skip(f"{command}: needs a checkout of memoavatar/memo: set MEMO_OFFICIAL_DIR")
    if how.gpu:
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"{command}: needs a CUDA device")
    checkout = _copy_checkout(tmp_path / "checkout")
    (checkout / "models").symlink_to(world / "models", target_is_directory=True)
    for path in (world / "files").iterdir():
        shutil.copy2(path, checkout / path.name)
    if how.official:
        (tmp_path / "memo").symlink_to(Path(OFFICIAL).resolve(), target_is_directory=True)
    if how.before:
        how.before(checkout)
    env = dict(os.environ, PATH=f"{world / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", MEMO_SHARED_DIR=str(SHARED),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("COMFYUI_MODELS", None)                   # the documented default: ./models
    with ComfyApiStub(world / "models") if how.stub else _nothing() as stub:
        if stub is not None:
            env["COMFYUI_URL"] = stub.url
        proc = subprocess.run(["bash", "-c", command + how.extra], cwd=checkout, env=env, capture_output=True,
                              text=True, timeout=600)
    assert proc.returncode == 0, f"{command}{how.extra}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    if how.check:
        how.check(Done(checkout, proc.stdout, proc.stderr, stub))


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_a_benchmark_run_as_a_file_runs_as_its_module(tmp_path):
    """`python benchmarks/memory_plan.py ...` (the form older docs and issues give) runs the module
    form with the checkout importable, from any folder."""
    script = REPO / "benchmarks" / "memory_plan.py"
    done = subprocess.run([sys.executable, str(script), "--smoke", "--memory", "default"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    plan = json.loads(done.stdout)["plans"][0]
    assert (plan["width"], plan["height"], plan["memory_preset"]) == (64, 64, "default") and plan["peak_gb"] > 0
