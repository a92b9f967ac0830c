"""A stand-in for MemoPipeline with cheap deterministic frames, and the render job's inputs and settings
for it: the render, resume, state and file-path tests share them."""
import math
from types import SimpleNamespace

import numpy as np
import torch

from memo_model.generation.state import MemoState
from memo_model.output.render import RenderInputs, RenderSettings, render_video

H = W = 32
FPC = 4           # frames per clip (small, so there are many clips)
SR = 16000


class FakePipeline:
    """Honours the MemoPipeline contract with cheap deterministic frames.

    A frame depends on the seed/RNG stream (one draw per clip), the clip's audio features and
    emotion, and the previous frame (carried in ``state.past_frames``), so a wrong slice, a
    lost state or a reordered clip changes the picture. Chunked calls equal one call.
    """

    def __init__(self, fingerprint="fake-weights"):
        self.networks = SimpleNamespace(fingerprint=fingerprint, dtype=torch.float32,
                                        device=torch.device("cpu"))
        self.vae = SimpleNamespace(fingerprint="fake-vae")
        self.calls = []

    def generate(self, reference, face_embedding, audio_features, emotion,
                 num_inference_steps=20, guidance_scale=3.5, seed=42, frames_per_clip=16,
                 past_frames=16, initial_past_frames=16, state=None, progress=None,
                 on_clip=None):
        total = len(audio_features)
        n_clips = -(-total // frames_per_clip)
        self.calls.append(total)
        gen = torch.Generator()
        if state is None:
            gen.manual_seed(int(seed))
            prev, clip_index = reference[0].clone(), 0
        else:
            gen.set_state(state.rng_state)
            prev, clip_index = state.past_frames[-1].clone(), state.clip_index
        h, w = reference.shape[-2:]
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        pad = n_clips * frames_per_clip - total
        feats = torch.cat([audio_features, audio_features[-1:].expand(pad, *audio_features.shape[1:])])
        emo = torch.cat([emotion, emotion[-1:].expand(pad)])
        frames = []
        for k in range(n_clips):
            phase = torch.rand(3, generator=gen) * 6.28
            for i in range(frames_per_clip):
                j = k * frames_per_clip + i
                a = float(feats[j].mean()) + 0.3 * int(emo[j]) + guidance_scale
                wave = torch.stack([torch.sin(3.14 * (xx + 0.5 * yy) + phase[c] + a) for c in range(3)])
                img = (0.7 * wave + 0.3 * prev).clamp(-1, 1) + 0.01 * float(face_embedding.sum())
                frames.append(img)
                prev = img
            for s in range(num_inference_steps):
                if progress is not None:
                    progress(k * num_inference_steps + s + 1, n_clips * num_inference_steps)
            clip_index += 1
        stack = torch.stack(frames)                                    # [T',3,H,W] in [-1,1]
        out_frames = ((stack[:total] + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
        new_state = MemoState(past_frames=stack[-past_frames:].clone(), memory={},
                              rng_state=gen.get_state(), clip_index=clip_index,
                              settings={"weights": self.networks.fingerprint})
        return SimpleNamespace(frames=out_frames, state=new_state)


def make_inputs(num_frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    padded = math.ceil(num_frames / FPC) * FPC
    n_samples = math.floor(num_frames / 30 * SR) - 7        # -> ceil(seconds*30) == num_frames
    t = np.arange(n_samples) / SR
    return dict(
        reference=torch.rand(1, 3, H, W, generator=g) * 2 - 1,
        face_embedding=torch.randn(1, 512, generator=g),
        audio_features=torch.randn(padded, 5, 12, 8, generator=g),
        num_frames=num_frames,
        emotion=torch.randint(0, 9, (padded,), generator=g),
        audio=(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
        sample_rate=SR,
    )


def render(pipeline, *, output, **kwargs):
    """render_video writing the state after every clip (the tests crash at known clips); the
    inputs given as make_inputs' keywords."""
    kwargs.setdefault("max_checkpoint_share", None)
    inputs = RenderInputs(**{k: kwargs.pop(k) for k in list(kwargs) if k in RenderInputs.__dataclass_fields__})
    return render_video(pipeline, inputs, output, **kwargs)


SETTINGS = RenderSettings(steps=2, frames_per_clip=FPC, past_frames=FPC, initial_past_frames=FPC,
                          clips_per_segment=2, preset="ultrafast")


class Crash(RuntimeError):
    pass


def crash_at(clip):
    def progress(p):
        if p.clip == clip and p.step == 1:
            raise Crash(f"crash in clip {clip}")
    return progress
