"""Which model files a render needs, where they go, which are missing, and fetching exactly those.

Nothing here touches the network unless :func:`download` is called. One layout everywhere: the
command line, the nodes and ``scripts/memo_api.py`` read ComfyUI's models folder (``root``), so a
ComfyUI user downloads once::

    root/memo/memo/reference_net/ diffusion_net/ image_proj/ audio_proj/     memoavatar/memo
    root/memo/memo/misc/audio_emotion_classifier/                             memoavatar/memo
    root/memo/memo/misc/face_analysis/models/{scrfd_10g_bnkps,glintr100}.onnx memoavatar/memo
    root/memo/memo/misc/vocal_separator/Kim_Vocal_2.onnx                      memoavatar/memo
    root/memo/wav2vec2-base-960h/              facebook/wav2vec2-base-960h
    root/memo/emotion2vec_plus_large/          emotion2vec/emotion2vec_plus_large
    root/vae/vae-ft-mse-840000-ema-pruned.safetensors    stabilityai/sd-vae-ft-mse-original

``memo/`` is the folder the node pack registers with ComfyUI, ``vae/`` core's VAE folder. Every
component can live elsewhere (``locations={"wav2vec": path}``); the parts inside the MEMO
checkpoint (emotion classifier, face models, vocal separator) follow ``locations["memo"]``. For a
single-file component the location is the file itself. A VAE given as a folder (not a
``.safetensors`` file) is a diffusers folder (stabilityai/sd-vae-ft-mse, component ``vae_diffusers``).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

LFS_POINTER = b"version https://git-lfs"
_TMP = ".memo-download"

MEMO_FOLDER = "memo"                 # models/memo: the folder the node pack registers with ComfyUI
VAE_FOLDER = "vae"                   # models/vae: ComfyUI's VAE folder (core VAELoader)
CHECKPOINT_FOLDER = "memo"           # models/memo/memo: the MEMO checkpoint
VAE_FILE = "vae-ft-mse-840000-ema-pruned.safetensors"


@dataclass(frozen=True)
class Component:
    name: str
    repo: str                   # hub repo id
    prefix: str                 # folder of the files inside the repo ("" = repo root)
    files: tuple                # file names relative to the component folder
    default_dir: str            # component folder relative to the models folder (root)
    option: str                 # the command-line option that points at it
    what: str                   # user words
    licence: str = ""
    single_file: bool = False   # the location names the file, not its folder
    in_checkpoint: Optional[str] = None    # its folder inside the MEMO checkpoint ("" = the checkpoint)

    def repo_path(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel


_MEMO_NETS = tuple(f"{net}/{name}" for net in ("reference_net", "diffusion_net", "image_proj", "audio_proj")
                   for name in ("config.json", "diffusion_pytorch_model.safetensors"))
_DIFFUSERS = ("config.json", "diffusion_pytorch_model.safetensors")
_CKPT = f"{MEMO_FOLDER}/{CHECKPOINT_FOLDER}"

COMPONENTS: dict[str, Component] = {c.name: c for c in (
    Component("memo", "memoavatar/memo", "", _MEMO_NETS, _CKPT, "--models",
              "MEMO networks (reference net, diffusion net, image and audio projections)", "Apache-2.0",
              in_checkpoint=""),
    Component("emotion_classifier", "memoavatar/memo", "misc/audio_emotion_classifier", _DIFFUSERS,
              f"{_CKPT}/misc/audio_emotion_classifier", "--models", "MEMO audio emotion classifier", "Apache-2.0",
              in_checkpoint="misc/audio_emotion_classifier"),
    Component("face", "memoavatar/memo", "misc/face_analysis/models",
              ("scrfd_10g_bnkps.onnx", "glintr100.onnx"), f"{_CKPT}/misc/face_analysis/models", "--face-models",
              "InsightFace SCRFD face detector + ArcFace glintr100 recogniser",
              "InsightFace models: non-commercial research use only", in_checkpoint="misc/face_analysis/models"),
    Component("vocal_separator", "memoavatar/memo", "misc/vocal_separator", ("Kim_Vocal_2.onnx",),
              f"{_CKPT}/misc/vocal_separator", "--vocal-separator", "Kim_Vocal_2 vocal separator (MDX-Net)",
              "UVR model, MIT", single_file=True, in_checkpoint="misc/vocal_separator"),
    Component("vae", "stabilityai/sd-vae-ft-mse-original", "", (VAE_FILE,), VAE_FOLDER, "--vae",
              "Stable Diffusion VAE sd-vae-ft-mse, one file as ComfyUI's models/vae holds it", "MIT",
              single_file=True),
    Component("vae_diffusers", "stabilityai/sd-vae-ft-mse", "", _DIFFUSERS, "", "--vae",
              "Stable Diffusion VAE sd-vae-ft-mse, diffusers folder", "MIT"),
    Component("wav2vec", "facebook/wav2vec2-base-960h", "",
              ("config.json", "preprocessor_config.json", "model.safetensors"), f"{MEMO_FOLDER}/wav2vec2-base-960h",
              "--wav2vec", "wav2vec2-base-960h audio encoder", "Apache-2.0"),
    Component("emotion2vec", "emotion2vec/emotion2vec_plus_large", "", ("config.yaml", "model.pt"),
              f"{MEMO_FOLDER}/emotion2vec_plus_large", "--emotion2vec",
              "emotion2vec+ large speech-emotion backbone", "see the emotion2vec model card"),
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


def folder_in_memo(name: str) -> str:
    """The component's folder name under models/memo ("memo" for the checkpoint and its parts,
    "wav2vec2-base-960h", ...): what the node pack's dropdowns offer by default."""
    c = component(name)
    if c.in_checkpoint is not None:
        return CHECKPOINT_FOLDER
    head, _, rest = c.default_dir.partition("/")
    if head != MEMO_FOLDER or not rest:
        raise ValueError(f"{name} does not live under models/{MEMO_FOLDER}")
    return rest


def locations_for_memo_folder(name: str, folder) -> dict:
    """``locations`` that place the component ``name`` in ``folder``, a folder of models/memo as
    the node pack's dropdowns name it (the checkpoint folder for its parts)."""
    c = component(name)
    return {"memo" if c.in_checkpoint is not None else name: Path(folder)}


def resolve(name: str, root, locations: Optional[Mapping[str, object]] = None) -> tuple[Component, Path]:
    """The component that is actually read, and its location (folder, or file for single-file ones).

    A given location wins; the parts of the MEMO checkpoint follow the checkpoint's location; a VAE
    location that is not a ``.safetensors`` file is a diffusers folder."""
    c = component(name)
    given = (locations or {}).get(name)
    if given is not None:
        where = Path(given).expanduser()
        if name == "vae" and where.suffix.lower() != ".safetensors":
            return COMPONENTS["vae_diffusers"], where
        return c, where
    if c.in_checkpoint and (locations or {}).get("memo") is not None:
        base = Path((locations or {})["memo"]).expanduser() / c.in_checkpoint
    else:
        base = Path(root).expanduser() / c.default_dir
    return c, (base / c.files[0] if c.single_file else base)


def location(name: str, root, locations: Optional[Mapping[str, object]] = None) -> Path:
    """The component's folder (or file, for single-file components) on disk."""
    return resolve(name, root, locations)[1]


def local_files(name: str, root, locations: Optional[Mapping[str, object]] = None) -> list[tuple[str, Path]]:
    """(repo path, local path) for every file of the component."""
    c, where = resolve(name, root, locations)
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
        c = resolve(name, root, locations)[0]
        for repo_path, path in local_files(name, root, locations):
            reason = _problem(path)
            if reason:
                out.append(MissingFile(c.name, c.repo, repo_path, path, reason))
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


def missing_files_message(missing: list[MissingFile], *, download_hint: str = "--download",
                          label: Optional[Callable[[str], str]] = None, closing: Optional[str] = None) -> str:
    """A multi-line error: each missing file, where it goes, and the exact download commands.

    ``label(component)`` names where the user points at a component (default: its command-line
    option); ``closing`` replaces the last line (how else to get the files)."""
    if not missing:
        return "all model files are present"
    label = label or (lambda name: COMPONENTS[name].option)
    lines = ["Model files are missing:"]
    for name in dict.fromkeys(m.component for m in missing):
        c = COMPONENTS[name]
        lines.append(f"  {c.what} ({label(name)}, hub repo {c.repo}"
                     + (f"; licence: {c.licence}" if c.licence else "") + "):")
        for m in missing:
            if m.component == name:
                note = "" if m.reason == "missing" else f" [{m.reason}]"
                lines.append(f"    - {m.repo_path}{note}  ->  {m.path}")
    lines.append("Download them with (pip install huggingface_hub provides `hf`):")
    lines += [f"  {cmd}" for cmd in download_command(missing)]
    if closing is not None:
        lines.append(closing)
    elif download_hint:
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
           "local_files", "find_missing", "download_command", "missing_files_message", "download", "resolve",
           "folder_in_memo", "locations_for_memo_folder", "MEMO_FOLDER", "VAE_FOLDER", "CHECKPOINT_FOLDER",
           "VAE_FILE"]
