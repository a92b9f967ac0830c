"""A dialogue render: several faces of one picture, each driven by its own voice, in one mp4.

Each face is generated exactly as a single-face render of its own crop would be (its reference,
face embedding, voice features, emotion labels and seed; :func:`render_video`'s call to
``pipeline.generate``, clip by clip with its own ``MemoState``), and the faces are pasted into
the same frames.

Order and overlaps. Every frame starts as the picture; the faces are pasted in the order they
are given, each with its framing's feathered paste-back (:meth:`memo_model.face.Framing.paste_into`)
over what is already there. So a later face lies over an earlier one where their crops overlap,
its feathered edge blending into the earlier face; where crops do not overlap, each face's
pixels are byte for byte those of its single-face render, and pixels outside every crop are the
picture's.

Seeds. Face k (0-based, in the given order) uses ``settings.seed + k`` unless it names its own
``seed``: independent noise per face, so two faces do not share head motion, and a one-face
dialogue is the single-face render.

Length. Every face's features cover ``num_frames`` (voices padded with silence to the longest,
:mod:`memo_model.audio.voices`), so a face whose voice has ended goes on moving on silence.

Memory and time. Faces are generated one after another, clip by clip: for clip k, each face
generates clip k with its own state (the other faces' states wait in host memory), and is
pasted into the clip's composite frames (uint8, host memory); then the composite clip goes to
the streaming mp4 writer. The device holds one face's generation at a time, so its peak is a
single face's; the host adds the composite clip and the waiting states. Time is about N single
renders.

Resume (``resume=True``, the checkpoint folder of :mod:`memo_model.output.resume`): a checkpoint
after every face's clip holds every face's state, how many faces finished the current clip and
that clip's composite so far, so a re-run continues after the last finished clip of the last
finished face and writes the same bytes as an uninterrupted render. Finished clips are stored
as for a single face (encoded segments and the unfinished segment's frames).
"""
from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .. import identity
from ..partial_files import remove_abandoned
from .dialogue_resume import DialogueCheckpoint, restore
from .media import partial_path
from .render import malloc_trim
from .resume import CheckpointPacing, ResumeStore, job_fingerprint, resume_dir_for
from .settings import RenderSettings
from .video import Mp4Writer

logger = logging.getLogger(__name__)

FORMAT = "memo-dialogue/1"

__all__ = ["DialogueFace", "DialogueProgress", "DialogueResult", "DialogueCheckpoint", "render_dialogue",
           "dialogue_fingerprint", "face_seed", "composite_clip", "FORMAT"]


@dataclass
class DialogueFace:
    """One face's prepared inputs: what a single-face render of its crop takes, plus where it goes.

    ``audio_features`` [T,5,L,C] (or disk-backed windows) and ``emotion`` [T] cover T >=
    num_frames frames; ``framing`` is the face's crop of the dialogue's picture; ``seed`` None
    follows the seed rule (module docstring); ``name`` names the face in messages."""

    reference: torch.Tensor
    face_embedding: torch.Tensor
    audio_features: object
    emotion: torch.Tensor
    framing: object
    seed: Optional[int] = None
    name: str = ""


@dataclass
class DialogueProgress:
    """Face ``face`` of ``num_faces`` in clip ``clip`` of ``num_clips``, ``step`` of ``num_steps``.

    ``resumed_clips``: clips' worth of work taken from a checkpoint (fractional when the render
    resumed inside a clip), so progress bars start where the checkpoint left off."""

    clip: int
    num_clips: int
    face: int
    num_faces: int
    step: int
    num_steps: int
    resumed_clips: float = 0.0

    @property
    def fraction(self) -> float:
        done = (self.clip * self.num_faces + self.face) * self.num_steps + self.step
        return done / max(1, self.num_clips * self.num_faces * self.num_steps)


@dataclass
class DialogueResult:
    path: Path
    num_frames: int
    num_clips: int
    num_faces: int
    resumed_face_clips: int         # face clips taken from a checkpoint instead of generated
    width: int
    height: int
    seeds: list


def face_seed(settings: RenderSettings, position: int, face: DialogueFace) -> int:
    """The seed face ``position`` generates with: its own, else ``settings.seed + position``."""
    return int(face.seed) if face.seed is not None else int(settings.seed) + int(position)


def composite_clip(picture: np.ndarray, framings: Sequence, clips: Sequence, out: Optional[np.ndarray] = None):
    """Paste every face's frames into copies of ``picture`` in the given order (later over earlier).

    ``clips[k]``: face k's frames [n, h, w, 3] float in [0, 1] (all faces the same n); returns
    [n, H, W, 3] uint8 (``out`` when given)."""
    n = {len(c) for c in clips}
    if len(n) != 1:
        raise ValueError(f"every face needs the same number of frames to composite, got {sorted(n)}")
    n = n.pop()
    if out is None:
        out = np.empty((n,) + picture.shape, np.uint8)
    out[...] = picture
    for framing, frames in zip(framings, clips):
        for t in range(n):
            framing.paste_into(frames[t], out[t])
    return out


def _picture_of(faces: Sequence[DialogueFace], picture) -> np.ndarray:
    from ..face.images import to_rgb_uint8

    sizes = {tuple(f.framing.image_size) for f in faces}
    if len(sizes) != 1:
        raise ValueError(f"the faces' framings are for pictures of different sizes {sorted(sizes)}; frame every "
                         "face from the same picture")
    if picture is None:
        picture = faces[0].framing.image
        if picture is None:
            raise ValueError("pass picture= (the faces' framings do not hold the picture, e.g. loaded from JSON)")
    picture = to_rgb_uint8(picture, name="picture")
    if picture.shape[1::-1] != sizes.pop():
        raise ValueError(f"picture is {picture.shape[1]}x{picture.shape[0]}, the faces were framed in a "
                         f"{faces[0].framing.image_size[0]}x{faces[0].framing.image_size[1]} picture")
    return picture


def _check_faces(faces: Sequence[DialogueFace], num_frames: int) -> None:
    if not faces:
        raise ValueError("a dialogue needs at least one face")
    for k, f in enumerate(faces):
        name = f.name or f"face {k + 1}"
        if len(f.audio_features) < num_frames:
            raise ValueError(f"{name}: audio features cover {len(f.audio_features)} frames but the dialogue has "
                             f"{num_frames}; pad its voice to the longest before computing features")
        if len(f.emotion) != len(f.audio_features):
            raise ValueError(f"{name}: {len(f.emotion)} emotion labels for {len(f.audio_features)} frames of "
                             "audio features; they must match")
        if not callable(getattr(f.framing, "paste_into", None)):
            raise ValueError(f"{name}: framing must be a memo_model.face.Framing (it pastes the face back)")


def dialogue_fingerprint(pipeline, *, faces: Sequence[DialogueFace], num_frames: int, audio, sample_rate: int,
                         settings: RenderSettings, picture: np.ndarray,
                         inputs_fingerprint: Optional[str] = None) -> dict:
    """Per-input hashes of a dialogue job: each face's single-face job (its seed and paste-back
    included, :func:`memo_model.output.resume.job_fingerprint`), the face order and the picture."""
    components = {"format": FORMAT, "faces": str(len(faces)), "picture": identity.digest(picture)}
    for k, face in enumerate(faces):
        single = job_fingerprint(
            pipeline, reference=face.reference, face_embedding=face.face_embedding,
            audio_features=face.audio_features, num_frames=num_frames, emotion=face.emotion, audio=audio,
            sample_rate=sample_rate, settings=dataclasses.replace(settings, seed=face_seed(settings, k, face)),
            paste_back=face.framing.paste_back, inputs_fingerprint=inputs_fingerprint)
        components.update({f"face{k}.{key}": value for key, value in single.items() if key != "format"})
    return components


# --------------------------------------------------------------------------- the job

def render_dialogue(pipeline, *, faces: Sequence[DialogueFace], num_frames: int, audio, sample_rate: int,
                    output, picture=None, settings: RenderSettings = RenderSettings(), resume: bool = False,
                    progress: Optional[Callable[[DialogueProgress], None]] = None,
                    log: Optional[Callable[[str], None]] = None, inputs_fingerprint: Optional[str] = None,
                    fingerprint: Optional[dict] = None,
                    on_clip: Optional[Callable[[int, np.ndarray], None]] = None,
                    max_checkpoint_share: Optional[float] = 0.1) -> DialogueResult:
    """Render ``num_frames`` frames of every face in ``faces`` into one mp4 at ``output`` with
    ``audio`` (the soundtrack) muxed; see the module docstring for order, seeds, memory, resume.

    ``picture``: the background (default: the faces' framings' picture). ``progress`` gets a
    :class:`DialogueProgress` after every denoising step and may raise to cancel; ``log``,
    ``inputs_fingerprint`` (a hash of the input files and front-end settings, replacing the
    prepared tensors' hashes), ``on_clip(index, composite uint8 [n,H,W,3])`` and
    ``max_checkpoint_share`` are as for :func:`memo_model.output.render.render_video`;
    ``fingerprint``: :func:`dialogue_fingerprint` when the caller already computed it."""
    log = log or logger.info
    settings.validate()
    output = Path(output)
    fpc = int(settings.frames_per_clip)
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    faces = list(faces)
    _check_faces(faces, num_frames)
    picture = _picture_of(faces, picture)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output folder {output.parent} does not exist")
    num_clips, num_faces = -(-num_frames // fpc), len(faces)
    seeds = [face_seed(settings, k, f) for k, f in enumerate(faces)]

    remove_abandoned(output.parent, re.escape(partial_path(output).name), log)   # a killed run's partial
    store = None
    if resume:
        components = fingerprint or dialogue_fingerprint(
            pipeline, faces=faces, num_frames=num_frames, audio=audio, sample_rate=sample_rate, settings=settings,
            picture=picture, inputs_fingerprint=inputs_fingerprint)
        store = ResumeStore(resume_dir_for(output), components, num_clips, log,
                            clips_per_segment=settings.clips_per_segment, frames_per_clip=fpc, min_clips_done=0)
    elif resume_dir_for(output).exists():
        log(f"{resume_dir_for(output)} holds an interrupted render of this output; it is left "
            "alone (turn resume on to continue it, or delete it)")

    def new_writer() -> Mp4Writer:
        return Mp4Writer(output, fps=settings.fps, num_frames=num_frames, audio=audio, sample_rate=sample_rate,
                         crf=settings.crf, preset=settings.preset, segment_frames=settings.clips_per_segment * fpc,
                         on_segment=store.on_segment if store is not None else None)

    def clip_frames(c: int) -> int:
        return min(fpc, num_frames - c * fpc)

    writer = new_writer()
    pacing = CheckpointPacing(max_checkpoint_share)
    trim = malloc_trim()
    states: list = [None] * num_faces
    start, first_face, partial = 0, 0, None
    try:
        if store is not None:
            store.load()                  # locks the folder: released by remove() or close()
        if store is not None and store.state_file is not None:
            try:
                ckpt = restore(store, writer, num_faces, clip_frames, picture.shape)
                states, start, first_face, partial = ckpt.states, ckpt.clips_done, ckpt.faces_done, ckpt.partial
                log(f"resuming from the checkpoint: {start} of {num_clips} clips done"
                    + (f", and {first_face} of {num_faces} faces of the next" if first_face else ""))
            except ValueError as exc:
                writer.abort()
                store.reset(f"the checkpoint cannot be used ({exc})")
                writer, states, start, first_face, partial = new_writer(), [None] * num_faces, 0, 0, None
        resumed = start + first_face / num_faces

        for c in range(start, num_clips):
            n = clip_frames(c)
            window = slice(c * fpc, (c + 1) * fpc)
            if partial is not None:
                composite, partial = partial, None
            else:
                composite = np.empty((n,) + picture.shape, np.uint8)
                composite[...] = picture
            for k in range(first_face if c == start else 0, num_faces):
                face = faces[k]

                def on_step(done, total, _c=c, _k=k):
                    if progress is not None:
                        progress(DialogueProgress(_c, num_clips, _k, num_faces, int(done), int(total), resumed))

                out = pipeline.generate(
                    face.reference, face.face_embedding, face.audio_features[window], face.emotion[window],
                    num_inference_steps=settings.steps, guidance_scale=settings.cfg, seed=seeds[k],
                    frames_per_clip=fpc, past_frames=settings.past_frames,
                    initial_past_frames=settings.initial_past_frames, state=states[k], progress=on_step)
                states[k] = out.state.to("cpu")          # waits in host memory while the others generate
                frames = out.frames[:n]
                del out
                for t in range(n):
                    face.framing.paste_into(frames[t], composite[t])
                del frames
                if store is not None and k + 1 < num_faces and pacing.due():
                    t0 = time.monotonic()
                    store.commit(c, DialogueCheckpoint(c, k + 1, states, composite))
                    pacing.wrote(time.monotonic() - t0)
            writer.write(composite)
            if store is not None and c + 1 < num_clips:
                store.record_clip(c + 1, composite)
                if pacing.due():
                    t0 = time.monotonic()
                    store.commit(c + 1, DialogueCheckpoint(c + 1, 0, states))
                    pacing.wrote(time.monotonic() - t0)
            if on_clip is not None:
                on_clip(c, composite)
            del composite
            if trim is not None:
                trim(0)
        writer.on_segment = None
        path = writer.close()
    except BaseException:
        writer.abort()
        if store is not None:
            store.close()
        raise
    if store is not None:
        store.remove()
    width, height = writer.size
    return DialogueResult(path=path, num_frames=num_frames, num_clips=num_clips, num_faces=num_faces,
                          resumed_face_clips=start * num_faces + first_face, width=width, height=height, seeds=seeds)
