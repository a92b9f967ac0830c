"""Model folders as files on disk, for the layout and download tests."""
from pathlib import Path

from memo_model.apps import download as dl


def touch(path: Path, data: bytes = b"x" * 2000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path



def old_layout(folder: Path, vae: bool = True) -> Path:
    """Every file of the command line's old layout: the checkpoint with everything inside."""
    for name in ("memo", "emotion_classifier", "face", "vocal_separator", "wav2vec", "emotion2vec"):
        c = dl.component(name)
        base = folder / (c.in_checkpoint if c.in_checkpoint is not None else c.default_dir.split("/", 1)[1])
        for rel in c.files:
            touch(base / rel, b"{}" if rel.endswith(".json") else b"x" * 2000)
    if vae:
        for rel in dl.component("vae_diffusers").files:
            touch(folder / "vae" / rel, b"{}" if rel.endswith(".json") else b"x" * 2000)
    return folder
