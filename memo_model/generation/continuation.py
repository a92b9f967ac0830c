"""Frames in pieces: a video rendered over several runs, each continuing where the last stopped.

The IMAGE route of the nodes (MEMO Sampler, MEMO State Carry) renders at most ``max_frames`` per
run and hands a :class:`CarriedState` on: the generation's :class:`~memo_model.generation.state.MemoState`
plus where the video stands (``info``). :func:`sample_frames` is that route in one call: it checks
that a carried state may continue with these inputs and settings, picks the frames of this run
(whole clips), generates them and returns the state to carry on. The pieces together are the
frames one uninterrupted run gives.

``info`` keys: frames_done (frames of the current audio done), audio / face / weights
(identities of the inputs the state was made from), audio_frames (the audio's length in frames),
fps, frames_per_clip, steps, cfg, past_frames (what a continuation must keep), padded_tail
(frames generated past the audio's end in the last clip), chunks (runs over this audio),
video_frames (frames of the whole video so far).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..job import SamplingSettings

if TYPE_CHECKING:        # cheap to import: the node pack's socket values use CarriedState
    from .state import MemoState


@dataclass
class CarriedState:
    """A MemoState plus where the video stands (see the module docstring for ``info``)."""

    state: MemoState
    info: dict = field(default_factory=dict)

    @property
    def frames_done(self) -> int:
        return int(self.info.get("frames_done", 0))

    @property
    def finished_audio(self) -> bool:
        return self.frames_done >= int(self.info.get("audio_frames", 0)) > 0

    def describe(self) -> str:
        i = self.info
        return (f"MEMO state: {i.get('frames_done', 0)} of {i.get('audio_frames', '?')} frames of the audio done "
                f"({self.state.clip_index} clips, {i.get('chunks', 0)} runs), {i.get('fps', '?')} fps, "
                f"{self.state.settings.get('width', '?')}x{self.state.settings.get('height', '?')}")


def kept_settings(sampling: SamplingSettings, fps: int) -> dict:
    """The settings a continuation must share with the run it continues (the noise seed and
    the first clip's past frames are not among them: a continuation uses neither)."""
    return {"fps": int(fps), "frames_per_clip": int(sampling.frames_per_clip), "steps": int(sampling.steps),
            "cfg": round(float(sampling.cfg), 4), "past_frames": int(sampling.past_frames)}


@dataclass(frozen=True)
class Identities:
    """What the frames are made from: the audio features, the face and the weights (digests)."""

    audio: str
    face: str
    weights: str


@dataclass(frozen=True)
class RunPlan:
    """The frames one run renders: ``count`` frames from ``start`` (whole clips), continuing ``previous``."""

    start: int
    count: int
    clips: int
    previous: Optional[MemoState]

    @property
    def stop(self) -> int:
        return self.start + self.count


def plan_run(carried: Optional[CarriedState], *, settings: dict, ids: Identities, audio_frames: int,
             frames_per_clip: int, max_frames: int = 0) -> RunPlan:
    """Where this run starts and how much it renders; refuses a state that cannot continue here.

    A state of the same audio continues at its ``frames_done``; a state of another audio (the next
    piece of a long recording) continues the video from frame 0 of this audio, provided the last
    one ended on a whole clip. ``max_frames`` 0 = everything left, else rounded up to whole clips."""
    start, previous = 0, None
    if carried is not None:
        if not isinstance(carried, CarriedState):
            raise ValueError("state: expected a MEMO_STATE from MemoSampler or MemoryStateCarry, got "
                             f"{type(carried).__name__}")
        info = carried.info
        changed = [f"{k}: state has {info.get(k)!r}, now {v!r}" for k, v in settings.items() if info.get(k) != v]
        if info.get("weights") not in (None, ids.weights):
            changed.append(f"weights: state made with MEMO weights {info.get('weights')}, now {ids.weights}")
        if info.get("face") not in (None, ids.face):
            changed.append("face: the state was made from another reference picture or framing")
        if changed:
            raise ValueError("state: this MEMO state cannot continue with these inputs (" + "; ".join(changed) +
                             "). Restore the settings it was made with, or start a new video without a state.")
        if info.get("audio") == ids.audio:
            start = carried.frames_done
            if start >= audio_frames:
                raise ValueError(f"state: all {audio_frames} frames of this audio are already rendered "
                                 f"({info.get('chunks', '?')} runs). Delete or rename the state file, or "
                                 "disconnect the state, to render it again.")
        elif int(info.get("padded_tail", 0)):
            raise ValueError(f"state: the previous audio ended inside a clip ({info['padded_tail']} padding frames "
                             "were generated after it), so a new audio cannot continue seamlessly. Cut audio pieces "
                             "to whole clips (frames_per_clip / fps seconds), or start a new video.")
        previous = carried.state
    if start % frames_per_clip:
        raise ValueError(f"state: it stopped at frame {start}, which is not a clip boundary for "
                         f"frames_per_clip={frames_per_clip}")
    left = audio_frames - start
    count = left if int(max_frames) == 0 else min(left, -(-int(max_frames) // frames_per_clip) * frames_per_clip)
    return RunPlan(start=start, count=count, clips=-(-count // frames_per_clip), previous=previous)


def carry_on(carried: Optional[CarriedState], plan: RunPlan, state: MemoState, *, settings: dict, ids: Identities,
             audio_frames: int, frames_per_clip: int) -> CarriedState:
    """The state to hand to the next run, with the bookkeeping of this one."""
    same_audio = carried is not None and carried.info.get("audio") == ids.audio
    info = dict(settings, audio=ids.audio, audio_frames=int(audio_frames), face=ids.face, weights=ids.weights,
                frames_done=plan.stop, padded_tail=plan.clips * frames_per_clip - plan.count,
                chunks=(int(carried.info.get("chunks", 0)) + 1) if same_audio else 1,
                video_frames=(int(carried.info.get("video_frames", 0)) if carried is not None else 0) + plan.count)
    return CarriedState(state=state, info=info)


def frame_range(features, start: int, stop: int):
    """features[start:stop]; disk-backed features stay on disk (read clip by clip later)."""
    return features.frames_view(start, stop) if hasattr(features, "frames_view") else features[start:stop]


@dataclass
class SampledFrames:
    frames: Any                 # [count, H, W, 3] float32 in 0..1, CPU
    start: int                  # first frame of the audio these frames show
    carried: CarriedState       # where the video stands after them


def sample_frames(pipeline, reference, face_embedding, audio_features, emotion, sampling: SamplingSettings, *,
                  fps: int, ids: Identities, audio_frames: int, state: Optional[CarriedState] = None,
                  max_frames: int = 0, progress: Optional[Callable[[int, int], None]] = None,
                  on_clip: Optional[Callable[[int, Any], None]] = None) -> SampledFrames:
    """The frames route: generate the next (at most ``max_frames``, whole clips) frames of a video.

    ``audio_features`` [T, 5, layers, C] and ``emotion`` [T] labels cover the audio's
    ``audio_frames`` frames (T padded to whole clips, or not: the pipeline pads the last clip);
    ``state``: the carried state of the previous run, or None for a new video (then the seed is
    used). ``progress(done, total)`` after every step, ``on_clip(index, frames)`` after every clip."""
    fpc = int(sampling.frames_per_clip)
    settings = kept_settings(sampling, fps)
    plan = plan_run(state, settings=settings, ids=ids, audio_frames=audio_frames, frames_per_clip=fpc,
                    max_frames=max_frames)
    feature_stop = plan.start + plan.clips * fpc
    features = frame_range(audio_features, plan.start, min(feature_stop, len(audio_features)))
    labels = emotion[plan.start:min(feature_stop, len(emotion))]
    out = pipeline.generate(reference, face_embedding, features, labels, **sampling.generate_kwargs(),
                            state=plan.previous, progress=progress, on_clip=on_clip)
    frames = out.frames[:plan.count]
    if len(frames) != plan.count:
        raise RuntimeError(f"MEMO generated {len(frames)} frames, expected {plan.count}")
    carried = carry_on(state, plan, out.state, settings=settings, ids=ids, audio_frames=audio_frames,
                       frames_per_clip=fpc)
    return SampledFrames(frames=frames, start=plan.start, carried=carried)


__all__ = ["CarriedState", "Identities", "RunPlan", "SampledFrames", "kept_settings", "plan_run", "carry_on",
           "frame_range", "sample_frames"]
