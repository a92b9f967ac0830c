"""Frames in pieces (memo_model.generation.continuation), without ComfyUI: which frames a run
renders, which carried states may continue, and that the pieces equal one run."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from memo_model.generation.continuation import (
    CarriedState,
    Identities,
    carry_on,
    kept_settings,
    plan_run,
    sample_frames,
)
from memo_model.job import SamplingSettings

FPC = 4
IDS = Identities(audio="voice-1", face="face-1", weights="w-1")
SAMPLING = SamplingSettings(steps=2, frames_per_clip=FPC, past_frames=FPC)
SETTINGS = kept_settings(SAMPLING, fps=25)


def carried(**info):
    base = dict(SETTINGS, audio=IDS.audio, face=IDS.face, weights=IDS.weights, audio_frames=10, frames_done=4,
                padded_tail=0, chunks=1, video_frames=4)
    return CarriedState(state=SimpleNamespace(clip_index=1, settings={}), info={**base, **info})


def plan(state, max_frames=0, frames=10):
    return plan_run(state, settings=SETTINGS, ids=IDS, audio_frames=frames, frames_per_clip=FPC,
                    max_frames=max_frames)


def test_a_run_renders_whole_clips_from_where_the_state_stopped():
    first = plan(None, max_frames=3)
    assert (first.start, first.count, first.clips, first.previous) == (0, 4, 1, None)     # 3 -> one whole clip
    later = plan(carried())
    assert (later.start, later.count, later.clips) == (4, 6, 2) and later.stop == 10
    nxt = carry_on(carried(), later, "new state", settings=SETTINGS, ids=IDS, audio_frames=10, frames_per_clip=FPC)
    assert nxt.frames_done == 10 and nxt.finished_audio and nxt.info["padded_tail"] == 2
    assert nxt.info["chunks"] == 2 and nxt.info["video_frames"] == 10 and nxt.state == "new state"
    # the next audio of the same video starts at its frame 0 and counts a new run
    other = Identities(audio="voice-2", face=IDS.face, weights=IDS.weights)
    assert plan_run(carried(frames_done=8, padded_tail=0), settings=SETTINGS, ids=other, audio_frames=10,
                    frames_per_clip=FPC).start == 0


@pytest.mark.parametrize("change, words", [
    (dict(steps=3), "steps: state has 3, now 2"),
    (dict(weights="w-2"), "weights: state made with MEMO weights w-2"),
    (dict(face="face-2"), "another reference picture"),
    (dict(frames_done=10), "all 10 frames of this audio are already rendered"),
    (dict(frames_done=6), "not a clip boundary"),
])
def test_a_state_that_cannot_continue_here_is_refused(change, words):
    with pytest.raises(ValueError, match="^state: ") as err:
        plan(carried(**change))
    assert words in str(err.value)
    with pytest.raises(ValueError, match="ended inside a clip"):
        plan_run(carried(padded_tail=2), settings=SETTINGS, ids=Identities("voice-2", IDS.face, IDS.weights),
                 audio_frames=10, frames_per_clip=FPC)
    with pytest.raises(ValueError, match="expected a MEMO_STATE"):
        plan("not a state")


def test_pieces_equal_one_run(tiny_pipeline):
    from memo_model.apps.tiny import random_inputs

    reference, face, features, emotion = random_inputs(10, seed=2)
    kw = dict(fps=25, ids=IDS, audio_frames=10)
    whole = sample_frames(tiny_pipeline, reference, face, features, emotion, SAMPLING, **kw)
    assert whole.frames.shape[0] == 10 and whole.start == 0 and whole.carried.frames_done == 10
    one = sample_frames(tiny_pipeline, reference, face, features, emotion, SAMPLING, max_frames=4, **kw)
    two = sample_frames(tiny_pipeline, reference, face, features, emotion, SAMPLING, state=one.carried, **kw)
    assert (one.start, len(one.frames), two.start, len(two.frames)) == (0, 4, 4, 6)
    assert torch.equal(torch.cat([one.frames, two.frames]), whole.frames)
    assert two.carried.info["chunks"] == 2
