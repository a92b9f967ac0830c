"""The generation nodes' work without ComfyUI's node API: MEMO Sampler (frames, continued over
runs through a carried state) and MEMO Render Video (a streaming, resumable mp4).

Both run the library's stages (:func:`memo_model.generation.continuation.sample_frames`,
:func:`memo_model.output.render.render_video`) on a pipeline whose networks ComfyUI's model
manager places; here are only the node-side concerns: the model manager, progress with a
preview, output file names and the widget names in messages.
"""
from __future__ import annotations

import logging

from ..memo_model.identity import digest
from ..memo_model.job import JobError, OutputSettings, SamplingSettings
from . import checks, host
from .ops_audio import trim_audio
from .ops_video import next_video_path, prefix_problem, prepare_mux_audio, unfinished_video_paths, video_preview
from .vae_adapter import as_codec

logger = logging.getLogger("memo.nodes")


def activation_bytes(memo_models, width: int, height: int, frames_per_clip: int, cfg: float) -> int:
    """Device memory a generation needs beyond the weights, for load_models_gpu(memory_required=...):
    the memory planner's peak for these networks, size, clip length, CFG, dtype and memory setting
    (memo_model.apps.memory_plan; runs the generation code on meta tensors once per setting, cached)."""
    from ..memo_model.apps.memory_plan import activation_bytes_required

    return activation_bytes_required(memo_models.networks, width, height, frames_per_clip, cfg,
                                     getattr(memo_models, "memory", "default"), memo_models.dtype)


def memo_pipeline(memo_models, vae, size: tuple, frames_per_clip: int, cfg: float, need: "int | None" = None):
    """A MemoPipeline computing where the model manager loads the networks (with partial loading
    some weights stay on the offload device), in the loader's precision; the networks are loaded
    again after every VAE call, in case the manager evicted them to fit the VAE. `need`: the device
    bytes beyond the weights to ask the manager for (default: one generation of this size)."""
    from ..memo_model.generation.pipeline import MemoPipeline

    width, height = size
    if need is None:
        need = activation_bytes(memo_models, width, height, frames_per_clip, cfg) if host.in_comfyui() else 0

    def ensure_loaded():
        return memo_models.managed.load(memory_required=need)

    codec = as_codec(vae, after=ensure_loaded, input_name="vae")
    device = ensure_loaded()
    return MemoPipeline(memo_models.networks, codec, getattr(memo_models, "memory", "default"),
                        getattr(memo_models, "compile", False), device=device, dtype=memo_models.dtype)


def clip_inputs(audio, emotion, frames_per_clip: int):
    """(audio features [T, 5, layers, C], emotion labels [T]) of MEMO_AUDIO + MEMO_EMOTION for
    clips of this length (memo_model.audio.features_for_clips), refusing an emotion track of
    another audio."""
    from ..memo_model.audio import features_for_clips

    if emotion.num_samples != audio.num_samples_16k:
        raise ValueError(f"emotion: made from another audio ({emotion.num_samples} samples at 16 kHz, the audio "
                         f"features have {audio.num_samples_16k}); feed MemoDetectEmotion the same AUDIO as "
                         "MemoAudioEncode")
    if audio.features.frames_per_clip != frames_per_clip:
        logger.info("MEMO: audio was padded for %d-frame clips, sampling %d-frame clips: the last clip is "
                    "padded by repeating the last frame's features", audio.features.frames_per_clip, frames_per_clip)
    return features_for_clips(audio.features, emotion, frames_per_clip)


def _valid(*parts) -> None:
    """The widgets' values against the job's rules (the widgets carry the settings' names)."""
    problems = [p for part in parts for p in part.problems()]
    if problems:
        raise JobError(problems)


def _warn(sampling: SamplingSettings, fps: int, warnings: "list | None") -> None:
    """Settings far from the trained ones: the command line's warnings (logged, and for the node's text)."""
    found = checks.settings_warnings(fps=fps, frames_per_clip=int(sampling.frames_per_clip),
                                     past_frames=int(sampling.past_frames),
                                     initial_past_frames=int(sampling.initial_past_frames), cfg=float(sampling.cfg))
    if warnings is not None:
        warnings += [f"warning: {w}" for w in found]


def _frames_to_make(audio, sampling: SamplingSettings, max_frames: int, state) -> int:
    """Frames this sampler run returns (before it starts: for the memory check)."""
    left = max(0, int(audio.num_frames) - int(getattr(state, "frames_done", 0) or 0))
    if max_frames:
        fpc = int(sampling.frames_per_clip)
        left = min(left, -(-int(max_frames) // fpc) * fpc)
    return left


def _reference_preview(face):
    return host.preview_image(((face.reference[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1))


def sample_video(memo_models, vae, face, audio, emotion, sampling: SamplingSettings, max_frames: int = 0,
                 state=None, warnings: "list | None" = None) -> tuple:
    """MEMO Sampler: -> (frames IMAGE, their AUDIO, fps, MEMO_STATE to continue from). Refused before
    any work when the frames would not fit in memory; warnings the command line gives too (settings
    far from the trained ones) are appended to `warnings`."""
    from ..memo_model.generation.continuation import Identities, sample_frames

    _valid(sampling)
    fps = int(audio.fps)
    _warn(sampling, fps, warnings)
    checks.check_frames_fit(_frames_to_make(audio, sampling, max_frames, state), face.size, name="max_frames",
                            advice="set max_frames to render the audio over several runs (with MEMO State Carry), "
                                   "or use MEMO Render Video, which streams clip by clip into the mp4")
    fpc = int(sampling.frames_per_clip)
    features, labels = clip_inputs(audio, emotion, fpc)
    ids = Identities(audio=audio.fingerprint, face=face.fingerprint, weights=memo_models.fingerprint)
    pipe = memo_pipeline(memo_models, vae, face.size, fpc, float(sampling.cfg))
    bar = host.Progress(1)
    latest = {"preview": _reference_preview(face)}

    def on_clip(_index, frames):
        if len(frames):
            latest["preview"] = host.preview_image(frames[-1])

    def progress(done, total_steps):
        bar.update(done, total_steps, latest["preview"])

    host.check_interrupt()
    run = sample_frames(pipe, face.reference, face.embedding, features, labels, sampling, fps=fps, ids=ids,
                        audio_frames=audio.num_frames, state=state, max_frames=int(max_frames), progress=progress,
                        on_clip=on_clip)
    frames = run.frames.to(host.intermediate_device())
    return frames, trim_audio(audio.audio, run.start, len(frames), fps), float(fps), run.carried


def render_video_file(memo_models, vae, face, audio, emotion, sampling: SamplingSettings, output: OutputSettings,
                      filename_prefix: str, warnings: "list | None" = None) -> tuple[tuple, dict]:
    """MEMO Render Video: the whole video into an mp4 in the output folder, clip by clip; with
    `output.resume` an interrupted render of the same job continues in the same file.

    Returns the node's outputs (path, core VIDEO) and what the canvas shows (the video).
    `warnings` receives what the command line warns about too (settings, an unusable checkpoint)
    and the render's notes (resumed, checkpoints removed), in the users' folder names."""
    from ..memo_model.output.checkpoint_lifetime import prune_checkpoints
    from ..memo_model.output.render import RenderInputs, RenderSettings, find_checkpoint, render_fingerprint
    from ..memo_model.output.render import render_video as render

    notes = warnings if warnings is not None else []
    note = checks.note_to(notes)

    problem = prefix_problem(filename_prefix)        # a linked prefix arrives unchecked: before any work
    if problem:
        raise ValueError(problem)
    _valid(sampling, output)
    fps = int(audio.fps)
    _warn(sampling, fps, notes)
    fpc = int(sampling.frames_per_clip)
    features, labels = clip_inputs(audio, emotion, fpc)
    total = audio.num_frames
    settings = RenderSettings.of(sampling, fps=fps, crf=int(output.crf))
    settings.validate()
    paste = None
    if output.paste_back and face.framing is not None:
        checks.check_paste_back_size(face.framing.image_size)
        paste = face.paste_back(output.feather)
    wave, rate = prepare_mux_audio(audio.audio, total, fps)
    pipe = memo_pipeline(memo_models, vae, face.size, fpc, float(sampling.cfg))
    inputs = RenderInputs(reference=face.reference, face_embedding=face.embedding, audio_features=features,
                          num_frames=total, emotion=labels, audio=wave, sample_rate=rate)
    identity = digest(audio.fingerprint, emotion.fingerprint, face.fingerprint)

    target = components = None
    unfinished = unfinished_video_paths(filename_prefix)
    if output.resume:
        components = render_fingerprint(pipe, inputs, settings, paste, identity)
        target = find_checkpoint(unfinished, components, log=lambda msg: note(f"warning: {msg}", logging.WARNING))
    path, subfolder, filename = target or next_video_path(filename_prefix)
    prune_checkpoints(unfinished, keep=path, log=note)
    frame_wh = face.framing.image_size if paste is not None else face.size
    checks.check_video_output(path, num_frames=total, fps=fps, frame_wh=frame_wh, resume=bool(output.resume))

    bar = host.Progress(1)
    latest = {"preview": None}

    def on_clip(_index, frames_u8):
        latest["preview"] = host.preview_image(frames_u8[-1])

    def progress(p):
        bar.update(p.clip * p.num_steps + p.step, p.num_clips * p.num_steps, latest["preview"])

    host.check_interrupt()
    result = render(pipe, inputs, path, settings=settings, paste_back=paste, resume=bool(output.resume),
                    inputs_fingerprint=identity, fingerprint=components, progress=progress, on_clip=on_clip,
                    log=note)
    return (str(result.path), host.video_output(result.path)), video_preview(filename, subfolder, fps)


__all__ = ["activation_bytes", "memo_pipeline", "clip_inputs", "sample_video", "render_video_file"]
