"""Which model files a render needs, which are missing, and fetching exactly those.

Nothing here touches the network unless :func:`download` is called. The default layout is
one folder (``root``, the MEMO checkpoint in the official hub layout) that also holds the
external models::

    root/reference_net/ diffusion_net/ image_proj/ audio_proj/       memoavatar/memo
    root/misc/audio_emotion_classifier/                                 memoavatar/memo
    root/misc/face_analysis/models/{scrfd_10g_bnkps,glintr100}.onnx     memoavatar/memo
    root/misc/vocal_separator/Kim_Vocal_2.onnx                          memoavatar/memo
    root/vae/                       stabilityai/sd-vae-ft-mse
    root/wav2vec2-base-960h/        facebook/wav2vec2-base-960h
    root/emotion2vec_plus_large/    emotion2vec/emotion2vec_plus_large

Every component can live elsewhere (``locations={"vae": path}``); for the single-file
vocal separator the location is the ``.onnx`` file itself.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

LFS_POINTER = b"version https://git-lfs"
_TMP = ".memo-download"


@dataclass(frozen=True)
class Component:
    name: str
    repo: str                   # hub repo id
    prefix: str                 # folder of the files inside the repo ("" = repo root)
    files: tuple                # file names relative to the component folder
    default_dir: str            # component folder relative to root
    option: str                 # the command-line option that points at it
    what: str                   # user words
    licence: str = ""
    single_file: bool = False   # the location names the file, not its folder

    def repo_path(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel


_MEMO_NETS = tuple(f"{net}/{name}" for net in ("reference_net", "diffusion_net", "image_proj", "audio_proj")
                   for name in ("config.json", "diffusion_pytorch_model.safetensors"))
_DIFFUSERS = ("config.json", "diffusion_pytorch_model.safetensors")

COMPONENTS: dict[str, Component] = {c.name: c for c in (
    Component("memo", "memoavatar/memo", "", _MEMO_NETS, ".", "--models",
              "MEMO networks (reference net, diffusion net, image and audio projections)", "Apache-2.0"),
    Component("emotion_classifier", "memoavatar/memo", "misc/audio_emotion_classifier", _DIFFUSERS,
              "misc/audio_emotion_classifier", "--models", "MEMO audio emotion classifier", "Apache-2.0"),
    Component("face", "memoavatar/memo", "misc/face_analysis/models",
              ("scrfd_10g_bnkps.onnx", "glintr100.onnx"), "misc/face_analysis/models", "--face-models",
              "InsightFace SCRFD face detector + ArcFace glintr100 recogniser",
              "InsightFace models: non-commercial research use only"),
    Component("vocal_separator", "memoavatar/memo", "misc/vocal_separator", ("Kim_Vocal_2.onnx",),
              "misc/vocal_separator", "--vocal-separator", "Kim_Vocal_2 vocal separator (MDX-Net)",
              "UVR model, MIT", single_file=True),
    Component("vae", "stabilityai/sd-vae-ft-mse", "", _DIFFUSERS, "vae", "--vae",
              "Stable Diffusion VAE (sd-vae-ft-mse)", "MIT"),
    Component("wav2vec", "facebook/wav2vec2-base-960h", "",
              ("config.json", "preprocessor_config.json", "model.safetensors"), "wav2vec2-base-960h",
              "--wav2vec", "wav2vec2-base-960h audio encoder", "Apache-2.0"),
    Component("emotion2vec", "emotion2vec/emotion2vec_plus_large", "", ("config.yaml", "model.pt"),
              "emotion2vec_plus_large", "--emotion2vec", "emotion2vec+ large speech-emotion backbone",
              "see the emotion2vec model card"),
)}

RENDER_COMPONENTS = ("memo", "emotion_classifier", "face", "vae", "wav2vec", "emotion2vec")


@dataclass(frozen=True)
class MissingFile:
    component: str
    repo: str
    repo_path: str              # path inside the hub repo
    path: Path                  # where it goes on disk
    reason: str                 # "missing", "empty" or "git-lfs pointer"

    @property
    def option(self) -> str:
        return COMPONENTS[self.component].option


def component(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise ValueError(f"unknown model component {name!r}; expected one of "
                         f"{', '.join(COMPONENTS)}") from None


def required_files(name: str) -> list[str]:
    """Paths inside the hub repo of every file the component needs."""
    c = component(name)
    return [c.repo_path(rel) for rel in c.files]


def location(name: str, root, locations: Optional[Mapping[str, object]] = None) -> Path:
    """The component's folder (or file, for single-file components) on disk."""
    c = component(name)
    given = (locations or {}).get(name)
    if given is not None:
        return Path(given).expanduser()
    base = Path(root).expanduser() / c.default_dir
    return base / c.files[0] if c.single_file else base


def local_files(name: str, root, locations: Optional[Mapping[str, object]] = None) -> list[tuple[str, Path]]:
    """(repo path, local path) for every file of the component."""
    c = component(name)
    where = location(name, root, locations)
    if c.single_file:
        return [(c.repo_path(c.files[0]), where)]
    return [(c.repo_path(rel), where / rel) for rel in c.files]


def _problem(path: Path) -> Optional[str]:
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size == 0:
        return "empty"
    if size <= 1024 and path.suffix not in (".json", ".yaml"):
        with open(path, "rb") as fh:
            if fh.read(len(LFS_POINTER)) == LFS_POINTER:
                return "git-lfs pointer"
    return None


def find_missing(root, components: Iterable[str] = RENDER_COMPONENTS,
                 locations: Optional[Mapping[str, object]] = None) -> list[MissingFile]:
    """Files that are absent, empty or only git-lfs pointer stubs (never touches the network)."""
    out = []
    for name in components:
        c = component(name)
        for repo_path, path in local_files(name, root, locations):
            reason = _problem(path)
            if reason:
                out.append(MissingFile(name, c.repo, repo_path, path, reason))
    return out


def download_command(missing: Iterable[MissingFile]) -> list[str]:
    """Shell commands (huggingface_hub's ``hf``) that put the files exactly where they go."""
    groups: dict[tuple, list[str]] = {}
    moves = []
    for m in missing:
        parts = Path(m.repo_path).parts
        if m.path.parts[-len(parts):] == parts:          # the layout matches the repo's
            local_dir = Path(*m.path.parts[:-len(parts)]) if len(m.path.parts) > len(parts) else Path(".")
            groups.setdefault((m.repo, str(local_dir)), []).append(m.repo_path)
        else:
            tmp = m.path.parent / _TMP
            groups.setdefault((m.repo, str(tmp)), []).append(m.repo_path)
            moves.append(f'mv "{tmp / m.repo_path}" "{m.path}"')
    cmds = [f'hf download {repo} {" ".join(files)} --local-dir "{local_dir}"'
            for (repo, local_dir), files in groups.items()]
    return cmds + moves


def missing_files_message(missing: list[MissingFile], *, download_hint: str = "--download") -> str:
    """A multi-line error: each missing file, where it goes, and the exact download commands."""
    if not missing:
        return "all model files are present"
    lines = ["Model files are missing:"]
    for name in dict.fromkeys(m.component for m in missing):
        c = COMPONENTS[name]
        lines.append(f"  {c.what} ({c.option}, hub repo {c.repo}"
                     + (f"; licence: {c.licence}" if c.licence else "") + "):")
        for m in missing:
            if m.component == name:
                note = "" if m.reason == "missing" else f" [{m.reason}]"
                lines.append(f"    - {m.repo_path}{note}  ->  {m.path}")
    lines.append("Download them with (pip install huggingface_hub provides `hf`):")
    lines += [f"  {cmd}" for cmd in download_command(missing)]
    if download_hint:
        lines.append(f"or run again with {download_hint} to fetch exactly these files, or point the "
                     "options above at folders that hold them.")
    return "\n".join(lines)


def download(root, components: Iterable[str] = RENDER_COMPONENTS,
             progress: Optional[Callable[[int, int, str], None]] = None,
             locations: Optional[Mapping[str, object]] = None) -> list[Path]:
    """Fetch exactly the missing files of ``components`` from the hub; returns their paths.

    Each file is downloaded (resumably) into ``<its folder>/.memo-download/`` and moved to its
    place only when complete. ``progress(done, total, repo_path)`` runs after each file.
    """
    missing = find_missing(root, components, locations)
    if not missing:
        return []
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise RuntimeError("downloading needs huggingface_hub: pip install huggingface_hub\n"
                           + missing_files_message(missing, download_hint="")) from exc
    done: list[Path] = []
    tmps = set()
    for i, m in enumerate(missing):
        tmp = m.path.parent / _TMP
        tmp.mkdir(parents=True, exist_ok=True)
        tmps.add(tmp)
        try:
            fetched = Path(hf_hub_download(m.repo, m.repo_path, local_dir=str(tmp)))
        except Exception as exc:  # noqa: BLE001 - hub errors come in many types; re-raised with context
            raise RuntimeError(f"could not download {m.repo_path} from {m.repo} ({exc}). Download it "
                               f"by hand:\n  " + "\n  ".join(download_command([m]))) from exc
        if _problem(fetched):
            raise RuntimeError(f"the hub returned an unusable {m.repo_path} from {m.repo} "
                               f"({_problem(fetched)})")
        os.replace(fetched, m.path)
        done.append(m.path)
        if progress is not None:
            progress(i + 1, len(missing), m.repo_path)
    for tmp in tmps:
        shutil.rmtree(tmp, ignore_errors=True)
    return done


__all__ = ["Component", "COMPONENTS", "RENDER_COMPONENTS", "MissingFile", "required_files", "location",
           "local_files", "find_missing", "download_command", "missing_files_message", "download"]
