"""MemoSampler: MEMO networks + VAE + face + audio features + emotion -> video frames."""
from __future__ import annotations

import logging

from . import host
from .audio_nodes import trim_audio
from .vae_adapter import as_codec
from .values import MEMO_AUDIO, MEMO_EMOTION, MEMO_FACE, MEMO_MODELS, MEMO_STATE, CarriedState

logger = logging.getLogger("memo.nodes")
CATEGORY = "MEMO"
INITIAL_PAST_FRAMES = 16     # official (after memoavatar/memo#37): 16 copies of the reference


def activation_bytes(memo_models, width: int, height: int, frames_per_clip: int, cfg: float) -> int:
    """Device memory a generation needs beyond the weights, for load_models_gpu(memory_required=...):
    the memory planner's peak for these networks, size, clip length, CFG, dtype and memory setting
    (memo_model.apps.memory_plan; runs the generation code on meta tensors once per setting, cached)."""
    from ..memo_model.apps.memory_plan import activation_bytes_required

    return activation_bytes_required(memo_models.networks, width, height, frames_per_clip, cfg,
                                     getattr(memo_models, "memory", "default"), memo_models.dtype)


def generation_inputs(seed_tooltip: str) -> dict:
    """The inputs MemoSampler and MemoRenderVideo share: models, conditioning and sampling settings."""
    return {
        "memo_models": (MEMO_MODELS, {"tooltip": "MEMO networks from MemoModelLoader."}),
        "vae": ("VAE", {"tooltip": "sd-vae-ft-mse from the core 'Load VAE' node "
                                   "(vae-ft-mse-840000-ema-pruned.safetensors in models/vae)."}),
        "face": (MEMO_FACE, {"tooltip": "Reference picture, face embedding and framing from MemoFacePrep."}),
        "audio": (MEMO_AUDIO, {"tooltip": "Audio features from MemoAudioEncode."}),
        "emotion": (MEMO_EMOTION, {"tooltip": "Emotion track from MemoDetectEmotion (same audio)."}),
        "steps": ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": "Denoising steps per clip (official: 20)."}),
        "cfg": ("FLOAT", {"default": 3.5, "min": 1.0, "max": 20.0, "step": 0.1, "round": 0.01,
                          "tooltip": "Classifier-free guidance scale (official: 3.5; 1 = off, twice as fast)."}),
        "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                         "tooltip": seed_tooltip}),
        "frames_per_clip": ("INT", {"default": 16, "min": 1, "max": 32,
                                    "tooltip": "Frames generated together (official: 16)."}),
        "past_frames": ("INT", {"default": 16, "min": 1, "max": 64,
                                "tooltip": "Previously generated frames the next clip looks at (official: 16)."}),
    }


def clip_inputs(audio, emotion, frames_per_clip: int):
    """(audio features [T, 5, layers, C], emotion labels [T]) for sampling clips of this length.

    T is the padded length when the audio was encoded for this clip length (official), else the
    audio's own frame count (the pipeline pads the last clip by repeating the last frame)."""
    if emotion.num_samples != audio.num_samples_16k:
        raise ValueError(f"emotion: made from another audio ({emotion.num_samples} samples at 16 kHz, the audio "
                         f"features have {audio.num_samples_16k}); feed MemoDetectEmotion the same AUDIO as "
                         "MemoAudioEncode")
    features = audio.features
    if features.frames_per_clip == frames_per_clip:
        return features.windows, emotion.for_frames(features.num_frames)
    logger.info("MEMO: audio was padded for %d-frame clips, sampling %d-frame clips: the last clip is "
                "padded by repeating the last frame's features", features.frames_per_clip, frames_per_clip)
    total = audio.num_frames
    return frame_range(features.windows, 0, total), emotion.for_frames(total)


def frame_range(features, start: int, stop: int):
    """features[start:stop]; disk-backed features stay on disk (read clip by clip later)."""
    return features.frames_view(start, stop) if hasattr(features, "frames_view") else features[start:stop]


def memo_pipeline(memo_models, vae, face, frames_per_clip: int, cfg: float):
    """A MemoPipeline whose networks and VAE are placed by ComfyUI's model manager before use."""
    from ..memo_model.generation.pipeline import MemoPipeline

    width, height = face.size
    need = activation_bytes(memo_models, width, height, frames_per_clip, cfg) if host.in_comfyui() else 0
    nets = memo_models.networks

    def ensure_loaded():
        # with partial loading some weights stay on the offload device: compute where the manager says
        nets.compute_device = memo_models.managed.load(memory_required=need)
        nets.compute_dtype = memo_models.dtype

    codec = as_codec(vae, after=ensure_loaded, input_name="vae")
    ensure_loaded()
    return MemoPipeline(nets, codec, getattr(memo_models, "memory", "default"), getattr(memo_models, "compile", False))


def _continuation(state: CarriedState | None, audio, face, models, settings: dict):
    """(start frame of this audio, previous MemoState or None), refusing incompatible states."""
    if state is None:
        return 0, None
    if not isinstance(state, CarriedState):
        raise ValueError("state: expected a MEMO_STATE from MemoSampler or MemoryStateCarry, got "
                         f"{type(state).__name__}")
    info = state.info
    changed = [f"{k}: state has {info.get(k)!r}, now {v!r}" for k, v in settings.items() if info.get(k) != v]
    if info.get("weights") not in (None, models.fingerprint):
        changed.append(f"weights: state made with MEMO weights {info.get('weights')}, now {models.fingerprint}")
    if info.get("face") not in (None, face.fingerprint):
        changed.append("face: the state was made from another reference picture or framing")
    if changed:
        raise ValueError("state: this MEMO state cannot continue with these inputs (" + "; ".join(changed) +
                         "). Restore the settings it was made with, or start a new video without a state.")
    if info.get("audio") == audio.fingerprint:
        start = state.frames_done
        if start >= audio.num_frames:
            raise ValueError(f"state: all {audio.num_frames} frames of this audio are already rendered "
                             f"({state.info.get('chunks', '?')} runs). Delete or rename the state file, or "
                             "disconnect the state, to render it again.")
        return start, state.state
    if int(info.get("padded_tail", 0)):
        raise ValueError(f"state: the previous audio ended inside a clip ({info['padded_tail']} padding frames were "
                         "generated after it), so a new audio cannot continue seamlessly. Cut audio pieces to whole "
                         "clips (frames_per_clip / fps seconds), or start a new video.")
    return 0, state.state


class MemoSampler:
    """Generate the talking video, clip by clip, with MEMO's memory carried across clips."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **generation_inputs("Noise seed of a new video. With a state connected the noise continues from "
                                    "the state and the seed is not used."),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 1_000_000,
                                       "tooltip": "Frames to generate in this run (rounded up to whole clips); 0 = "
                                                  "everything left. With MemoryStateCarry a long audio is rendered "
                                                  "over several runs, each continuing exactly where the last "
                                                  "stopped."}),
            },
            "optional": {
                "state": (MEMO_STATE, {"tooltip": "Continue a video: the state from a previous MemoSampler run "
                                                  "(directly or through MemoryStateCarry)."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", MEMO_STATE)
    RETURN_NAMES = ("images", "audio", "fps", "state")
    OUTPUT_TOOLTIPS = ("Generated frames [T, H, W, 3].",
                       "The audio of exactly these frames (T / fps seconds).",
                       "Frames per second (for CreateVideo / MemoVideoCombine / VHS_VideoCombine).",
                       "Where the video stopped: connect to the next MemoSampler or MemoryStateCarry.")
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = ("MEMO talking-head generation: 16-frame clips with memory-guided temporal attention and "
                   "emotion-aware audio attention. Progress per denoising step with the latest frame as preview. "
                   "Returns every frame in memory: for long audio use MEMO Render Video (streams clip by clip "
                   "into one mp4, resumable) or max_frames with MEMO State Carry.")

    def sample(self, memo_models, vae, face, audio, emotion, steps=20, cfg=3.5, seed=42, frames_per_clip=16,
               past_frames=16, max_frames=0, state=None):
        steps, fpc, past_frames = int(steps), int(frames_per_clip), int(past_frames)
        cfg = float(cfg)
        fps = int(audio.fps)
        from .checks import settings_warnings  # noqa: PLC0415

        settings_warnings(fps=fps, frames_per_clip=int(frames_per_clip), past_frames=int(past_frames), cfg=float(cfg))
        total = audio.num_frames
        usable, labels = clip_inputs(audio, emotion, fpc)

        settings = {"fps": fps, "frames_per_clip": fpc, "steps": steps, "cfg": round(cfg, 4),
                    "past_frames": past_frames}
        start, prev = _continuation(state, audio, face, memo_models, settings)
        if start % fpc:
            raise ValueError(f"state: it stopped at frame {start}, which is not a clip boundary for "
                             f"frames_per_clip={fpc}")
        left = total - start
        want = left if int(max_frames) == 0 else min(left, -(-int(max_frames) // fpc) * fpc)  # whole clips
        clips = -(-want // fpc)
        stop = start + want
        feature_stop = start + clips * fpc
        chunk_features = frame_range(usable, start, min(feature_stop, len(usable)))
        chunk_labels = labels[start:min(feature_stop, len(labels))]

        pipe = memo_pipeline(memo_models, vae, face, fpc, cfg)
        bar = host.Progress(clips * steps)
        latest = {"preview": host.preview_image(((face.reference[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1))}

        def on_clip(_index, frames):
            if len(frames):
                latest["preview"] = host.preview_image(frames[-1])

        def progress(done, total_steps):
            bar.update(done, total_steps, latest["preview"])

        host.check_interrupt()
        out = pipe.generate(face.reference, face.embedding, chunk_features, chunk_labels,
                            num_inference_steps=steps, guidance_scale=cfg, seed=int(seed), frames_per_clip=fpc,
                            past_frames=past_frames, initial_past_frames=INITIAL_PAST_FRAMES, state=prev,
                            progress=progress, on_clip=on_clip)
        frames = out.frames[:want].to(host.intermediate_device())
        if len(frames) != want:
            raise RuntimeError(f"MEMO generated {len(frames)} frames, expected {want}")

        same_audio = state is not None and state.info.get("audio") == audio.fingerprint
        info = dict(settings, audio=audio.fingerprint, audio_frames=total, face=face.fingerprint,
                    weights=memo_models.fingerprint, frames_done=stop, padded_tail=clips * fpc - want,
                    chunks=(int(state.info.get("chunks", 0)) + 1) if same_audio else 1,
                    video_frames=(int(state.info.get("video_frames", 0)) if state is not None else 0) + want)
        carried = CarriedState(state=out.state, info=info)
        return (frames, trim_audio(audio.audio, start, want, fps), float(fps), carried)
