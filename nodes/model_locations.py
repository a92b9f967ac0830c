"""Where each model lives under `models/memo/`, what the dropdowns list, and downloads.

Layout (the library's, memo_model.apps.download, which the command line reads too; defaults;
extra_model_paths.yaml can add more `memo:` folders):

    models/memo/memo/                        memoavatar/memo: reference_net/ diffusion_net/ image_proj/
                                             audio_proj/ misc/{audio_emotion_classifier, face_analysis/models,
                                             vocal_separator}
    models/memo/wav2vec2-base-960h/          facebook/wav2vec2-base-960h
    models/memo/emotion2vec_plus_large/      emotion2vec/emotion2vec_plus_large
    models/vae/vae-ft-mse-840000-ema-pruned.safetensors   (core VAELoader; sd-vae-ft-mse)

A checkpoint folder with wav2vec2-base-960h/ and emotion2vec_plus_large/ inside it (the command
line's layout before it read this one) works too: the dropdowns find those sub-folders.

Every loader follows the same rules: the dropdown lists what is on disk (plus the default folder
name, so a fresh install can pick it and download); missing files are downloaded from the hub
only when the node's `download_missing` switch is on, otherwise the node fails with an error that
lists every missing file, where it goes and the exact download command (memo_model.apps.download).
Nothing is downloaded at import time.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import host

logger = logging.getLogger("memo.nodes")


@dataclass(frozen=True)
class Kind:
    component: str          # memo_model.apps.download component name
    default: str            # default folder name under models/memo/
    marker: str             # a file whose presence makes a folder show up in the dropdown
    in_checkpoint: bool     # the files sit inside a MEMO checkpoint folder (misc/...)


def _kind(component: str, marker: str) -> Kind:
    """The folder names are the library's layout (memo_model.apps.download), the one the command line reads."""
    from ..memo_model.apps import download as dl

    return Kind(component, dl.folder_in_memo(component), marker, dl.component(component).in_checkpoint is not None)


KINDS = {
    "memo": _kind("memo", "diffusion_net/config.json"),
    "emotion_classifier": _kind("emotion_classifier", "misc/audio_emotion_classifier/config.json"),
    "face": _kind("face", "misc/face_analysis/models/scrfd_10g_bnkps.onnx"),
    "vocal_separator": _kind("vocal_separator", "misc/vocal_separator/Kim_Vocal_2.onnx"),
    "wav2vec": _kind("wav2vec", "preprocessor_config.json"),
    "emotion2vec": _kind("emotion2vec", "config.yaml"),
}


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; expected one of {', '.join(KINDS)}") from None


def default_choice(name: str) -> str:
    return kind(name).default


# --------------------------------------------------------------------------- dropdowns

def _candidate_dirs(root: Path, marker: str, max_depth: int = 3):
    """Folders below `root` that contain `marker`, as relative posix names (never root itself)."""
    if not root.is_dir():
        return
    for dirpath, dirnames, _files in os.walk(root, followlinks=True):
        rel = Path(dirpath).relative_to(root)
        depth = 0 if rel == Path(".") else len(rel.parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and d not in ("misc", "__pycache__", "reference_net", "diffusion_net"))
        if depth >= max_depth:
            dirnames[:] = []
        if depth and (Path(dirpath) / marker).is_file():
            yield rel.as_posix()


def choices(name: str) -> list[str]:
    """Dropdown values: folders that hold this model in any registered models/memo folder, then the
    default folder name (selectable before it is downloaded, for download_missing)."""
    k = kind(name)
    found: list[str] = []
    for root in host.model_roots(host.MEMO_FOLDER):
        for rel in _candidate_dirs(root, k.marker):
            if rel not in found:
                found.append(rel)
    if k.default not in found:
        found.append(k.default)
    return found


def locate(name: str, choice: str) -> Path:
    """The folder of a dropdown value: the first registered root that has it, else the default root."""
    k = kind(name)
    roots = host.model_roots(host.MEMO_FOLDER)
    for root in roots:
        path = host.safe_join(root, choice, what="model folder")
        if (path / k.marker).is_file():
            return path
    return host.safe_join(roots[0], choice, what="model folder")


def _root_and_locations(name: str, folder: Path):
    """memo_model.apps.download arguments for one component whose dropdown folder is `folder`."""
    from ..memo_model.apps import download as dl

    return folder, dl.locations_for_memo_folder(kind(name).component, folder)


def find_missing(name: str, folder: Path):
    from ..memo_model.apps import download as dl

    root, locations = _root_and_locations(name, folder)
    return dl.find_missing(root, [kind(name).component], locations)


def missing_message(missing, input_name: str) -> str:
    from ..memo_model.apps import download as dl

    lines = []
    for comp in dict.fromkeys(m.component for m in missing):
        c = dl.component(comp)
        lines.append(f"{input_name}: {c.what} is missing files (hub repo {c.repo}"
                     + (f"; licence: {c.licence}" if c.licence else "") + "):")
        lines += [f"  - {m.repo_path}{'' if m.reason == 'missing' else f' [{m.reason}]'}  ->  {m.path}"
                  for m in missing if m.component == comp]
    lines.append("Download them with (pip install huggingface_hub provides `hf`):")
    lines += [f"  {cmd}" for cmd in dl.download_command(missing)]
    lines.append("or switch on 'download_missing' on this node to fetch exactly these files from the hub.")
    return "\n".join(lines)


def ensure(name: str, choice: str, allow_download: bool, input_name: str) -> Path:
    """The folder of a dropdown value with every needed file present (downloading only if allowed)."""
    from ..memo_model.apps import download as dl

    folder = locate(name, choice)
    missing = find_missing(name, folder)
    if missing and allow_download:
        bar = host.Progress(len(missing))
        root, locations = _root_and_locations(name, folder)
        logger.info("MEMO: downloading %d file(s) for %s into %s", len(missing), input_name, folder)
        dl.download(root, [kind(name).component], locations=locations,
                    progress=lambda done, total, _path: bar.update(done, total))
        missing = find_missing(name, folder)
    if missing:
        raise FileNotFoundError(missing_message(missing, input_name))
    from .checks import check_model_folder  # noqa: PLC0415

    check_model_folder(component_files(name, folder), input_name)   # truncated / unreadable files, by name
    return folder


def component_path(name: str, folder: Path) -> Path:
    """Where the component's files are inside the dropdown folder (a file for single-file ones)."""
    from ..memo_model.apps import download as dl

    root, locations = _root_and_locations(name, folder)
    return dl.location(kind(name).component, root, locations)


def component_files(name: str, folder: Path) -> list[Path]:
    from ..memo_model.apps import download as dl

    root, locations = _root_and_locations(name, folder)
    return [p for _rel, p in dl.local_files(kind(name).component, root, locations)]
