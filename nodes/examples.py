"""Example pictures and voices for the shipped workflows, made available in ComfyUI's input folder.

The workflows name `memo_example_portrait.png` and `memo_example_voice.wav` (memo_dialogue: the
two-face picture and one voice per face), so they open with valid file widgets on a fresh
install. The files (example_inputs/, sources in its README) are copied into the input folder
when ComfyUI loads the pack, because the file dropdowns list that folder when the frontend asks;
a file of the same name is never overwritten, nothing is deleted, and MEMO_NO_EXAMPLE_INPUTS=1
turns the copy off.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from . import host

logger = logging.getLogger("memo.nodes")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "example_inputs"
EXAMPLE_PORTRAIT = "memo_example_portrait.png"
EXAMPLE_VOICE = "memo_example_voice.wav"
EXAMPLE_DIALOGUE_PICTURE = "memo_example_two_people.jpg"
EXAMPLE_DIALOGUE_VOICES = ("memo_example_voice_left.wav", "memo_example_voice_right.wav")
EXAMPLE_FILES = (EXAMPLE_PORTRAIT, EXAMPLE_VOICE, EXAMPLE_DIALOGUE_PICTURE, *EXAMPLE_DIALOGUE_VOICES)
OPT_OUT = "MEMO_NO_EXAMPLE_INPUTS"


def install_example_inputs(input_dir: Path | None = None) -> list[Path]:
    """Copy the missing example files into the input folder; returns the files copied.

    Only inside ComfyUI (or with an explicit folder); never raises: a read-only input folder
    just means the workflows ask the user to pick files."""
    if os.environ.get(OPT_OUT, "").strip() not in ("", "0"):
        return []
    if input_dir is None:
        if not host.in_comfyui():
            return []
        input_dir = host.input_directory()
    copied = []
    for name in EXAMPLE_FILES:
        target = Path(input_dir) / name
        if target.exists():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.partial")
            shutil.copyfile(EXAMPLES_DIR / name, partial)
            os.replace(partial, target)
            copied.append(target)
        except OSError as exc:
            logger.warning("MEMO: could not copy the example input %s into %s (%s)", name, input_dir, exc)
    if copied:
        logger.info("MEMO: example inputs %s copied into %s", ", ".join(p.name for p in copied), input_dir)
    return copied
