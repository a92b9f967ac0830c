"""Which models folder the command line reads, and what to tell a user of the old layout.

The command line reads the layout of :mod:`memo_model.apps.download`: ComfyUI's ``models``
folder (``memo/memo/``, ``memo/wav2vec2-base-960h/``, ``memo/emotion2vec_plus_large/``,
``vae/vae-ft-mse-840000-ema-pruned.safetensors``), so a ComfyUI user downloads once. The folder
is, first found wins:

1. ``--models DIR`` (also spelled ``--comfyui-models DIR``);
2. the ``COMFYUI_MODELS`` environment variable;
3. the ``models`` folder of the ComfyUI this pack is installed in (the pack's folder sits in
   ``ComfyUI/custom_nodes/``; symbolic links are not followed, so a linked pack counts where it
   is linked);
4. ``./models``.

Before this layout the command line read ``./models/memo`` holding the MEMO checkpoint with
``vae/`` (diffusers), ``wav2vec2-base-960h/`` and ``emotion2vec_plus_large/`` inside it. Such a
folder is recognised and answered with the moves that turn it into the new layout
(:func:`layout_problem`); nothing is moved for the user.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from .download import CHECKPOINT_FOLDER, COMPONENTS, MEMO_FOLDER, VAE_FILE, VAE_FOLDER

ENV = "COMFYUI_MODELS"
NETWORK_FOLDERS = ("reference_net", "diffusion_net", "image_proj", "audio_proj", "misc")
AUDIO_FOLDERS = ("wav2vec2-base-960h", "emotion2vec_plus_large")

__all__ = ["ModelsFolder", "find_models_folder", "installed_comfyui_models", "layout_problem", "ENV"]


@dataclass(frozen=True)
class ModelsFolder:
    path: Path
    source: str                 # how it was chosen, in the user's words

    def describe(self) -> str:
        return f"{self.path} ({self.source})"


def installed_comfyui_models(pack_dir=None) -> Optional[Path]:
    """``ComfyUI/models`` when this pack sits in ``ComfyUI/custom_nodes/<pack>``, else None."""
    pack = Path(os.path.abspath(pack_dir if pack_dir is not None else Path(__file__).parents[2]))
    models = pack.parent.parent / "models"
    if pack.parent.name == "custom_nodes" and models.is_dir():
        return models
    return None


def find_models_folder(given=None, *, environ: Optional[Mapping[str, str]] = None, pack_dir=None) -> ModelsFolder:
    """The models folder, by the rules of the module docstring."""
    if given is not None:
        return ModelsFolder(Path(given).expanduser(), "--models")
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "").strip():
        return ModelsFolder(Path(environ[ENV].strip()).expanduser(), f"${ENV}")
    comfy = installed_comfyui_models(pack_dir)
    if comfy is not None:
        return ModelsFolder(comfy, "the models folder of the ComfyUI this pack is installed in")
    return ModelsFolder(Path("models"), f"the default; set --models or ${ENV} to read another")


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "diffusion_net" / "config.json").is_file()


def layout_problem(folder, source: str = "--models") -> Optional[str]:
    """What to tell a user whose models ``folder`` is in the command line's old layout, or is
    ComfyUI's ``models/memo`` instead of ``models``; None when neither."""
    folder = Path(folder)
    if _is_checkpoint(folder / MEMO_FOLDER / CHECKPOINT_FOLDER):
        return None                                          # the new layout
    if _is_checkpoint(folder):
        return _migration(folder, f"{source} {folder}")
    if _is_checkpoint(folder / MEMO_FOLDER):
        if folder.name == MEMO_FOLDER:
            return (f"{source} {folder}: this is ComfyUI's models/{MEMO_FOLDER} folder; give the models folder "
                    f"that holds it: --models {folder.parent}")
        return _migration(folder / MEMO_FOLDER, f"{source} {folder}: {folder / MEMO_FOLDER}")
    return None


def _migration(old: Path, said: str) -> str:
    """The new layout and the moves from the old checkpoint folder ``old`` into it."""
    root = old.parent if old.name == MEMO_FOLDER else old
    memo = root / MEMO_FOLDER
    checkpoint = memo / CHECKPOINT_FOLDER
    vae = root / VAE_FOLDER / VAE_FILE
    nets = [old / n for n in NETWORK_FOLDERS if (old / n).exists()]
    audio = [old / n for n in AUDIO_FOLDERS if (old / n).exists() and old != memo]
    lines = [f"{said} holds the MEMO checkpoint in the command line's old layout (networks, misc/, vae/ and the "
             "audio models in one folder). The command line now reads ComfyUI's models layout, the one the "
             "nodes use, so one download serves both:",
             f"  {checkpoint}/   reference_net/ diffusion_net/ image_proj/ audio_proj/ misc/ "
             f"({COMPONENTS['memo'].repo})",
             f"  {memo / AUDIO_FOLDERS[0]}/   ({COMPONENTS['wav2vec'].repo})",
             f"  {memo / AUDIO_FOLDERS[1]}/   ({COMPONENTS['emotion2vec'].repo})",
             f"  {vae}   ({COMPONENTS['vae'].repo})",
             "Move your files once (nothing is downloaded again):",
             f'  mkdir -p "{checkpoint}"',
             "  mv " + " ".join(f'"{p}"' for p in nets) + f' "{checkpoint}/"']
    if audio:
        lines.append("  mv " + " ".join(f'"{p}"' for p in audio) + f' "{memo}/"')
    old_vae = old / "vae"
    if (old_vae / "config.json").is_file():
        lines.append(f"then run with --models {root} --vae {old_vae} (your diffusers VAE folder), or fetch the "
                     "single-file VAE once and drop --vae:")
    else:
        lines.append(f"then run with --models {root}, after fetching the single-file VAE:")
    lines.append(f'  hf download {COMPONENTS["vae"].repo} {VAE_FILE} --local-dir "{vae.parent}"')
    return "\n".join(lines)
