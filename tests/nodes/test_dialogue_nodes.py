"""The dialogue nodes run in-process without ComfyUI on tiny random weights: MEMO Face List, MEMO
Speaker, MEMO Dialogue Prep, MEMO Render Dialogue and MEMO Paste Back Onto.

The node route writes the same mp4 as the library's (the command line's) dialogue route for the
same picture and voice files; two MEMO Samplers pasted onto the picture one after the other give
the dialogue's frames; bad input is refused before any model runs; resume through the node is
byte-identical; ComfyUI's model manager is asked for one face's memory."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import memo_pack_testlib as lib
from memo_model.apps import tiny_frontends as tf
from memo_testing.pack import load_pack, node_classes
from memo_testing.standin_host import STANDIN, MemoInterrupted

nodes = load_pack().nodes
M = node_classes()
FPS = 30                    # 0.5 s -> 15 frames
FPC = 8                     # two clips
STEPS = 2
SIZE = 64
BOXES = [[88.0, 79.0, 152.0, 161.0], [328.0, 79.0, 392.0, 161.0]]     # the tiny detector's faces of the demo picture


@pytest.fixture(scope="module")
def dlg(tmp_path_factory):
    root = tmp_path_factory.mktemp("memo_dialogue_nodes")
    local = lib.LocalPack(root)
    ckpt = local.ckpt
    inp = root / "input"
    picture = tf.write_demo_dialogue_picture(inp / "two.png")
    a, b = tf.write_demo_voices(inp, seconds=(0.5, 0.3))                 # 15 and 9 frames at 30 fps
    c = tf.write_demo_voice(inp / "voice_1_long.wav", seconds=0.5, voice=1)
    tf.write_wav(inp / "silent.wav", np.zeros(8000))
    with torch.inference_mode():
        ns = SimpleNamespace(root=root, ckpt=ckpt, picture=picture, files={"a": a, "b": b, "c": c})
        ns.models, = M["MemoModelLoader"].execute("memo", "auto", False)
        ns.wav2vec, = M["MemoAudioModelLoader"].execute("memo/wav2vec2-base-960h", "fp32", False)
        ns.emotion_model, = M["MemoEmotionModelLoader"].execute("memo/emotion2vec_plus_large", "memo", "fp32", False)
        ns.separator, = M["MemoVocalSeparatorLoader"].execute("memo", False)
        ns.face_model, = M["MemoFaceModelLoader"].execute("memo", False)
        from memo_model.generation.vae import DiffusersVae
        ns.vae = DiffusersVae.from_pretrained(ckpt / "vae")
        ns.audio = {k: M["MemoLoadAudio"].execute(0.0, 0.0, name)[0]
                    for k, name in (("a", a.name), ("b", b.name), ("c", c.name), ("silent", "silent.wav"))}
        ns.image = lib.load_image_tensor(picture)
        ns.faces, ns.preview, ns.faces_info = M["MemoFaceList"].execute(ns.face_model, ns.image, 0.5)
    yield ns
    STANDIN.set_progress_hook(None)
    STANDIN.clear_interrupt()
    local.undo()


def speakers(ns, *entries):
    """A chain of MEMO Speaker nodes: entries are (audio key, face text[, widget overrides])."""
    chain = None
    for entry in entries:
        key, face, extra = (*entry, {}) if len(entry) == 2 else entry
        args = {"channel": -1, "emotion": "", "face_seed": -1, **extra}
        chain, _info = M["MemoSpeaker"].execute(ns.audio[key], face, speakers=chain, **args)
    return chain


def prep(ns, chain, faces=None, wav2vec=None, **kw):
    args = dict(width=SIZE, height=SIZE, crop_scale=2.0, offset_y=0.0, fps=FPS, vocal_separation=True,
                frames_per_clip=FPC, separator=ns.separator, emotion_model=ns.emotion_model, mix=None)
    args.update(kw)
    with torch.inference_mode():
        return M["MemoDialoguePrep"].execute(ns.faces if faces is None else faces, chain,
                                             ns.wav2vec if wav2vec is None else wav2vec, **args)


def render(ns, dialogue, **kw):
    args = dict(steps=STEPS, cfg=3.5, seed=42, frames_per_clip=FPC, past_frames=FPC, feather=0.1,
                filename_prefix="MEMO/dialogue", crf=18, resume=False, initial_past_frames=FPC)
    args.update(kw)
    with torch.inference_mode():
        result = M["MemoRenderDialogue"].execute(ns.models, ns.vae, dialogue, **args)
    return Path(result.args[0]), result.ui


def library_pipeline(ns):
    from memo_pack.memo_model.generation.pipeline import MemoPipeline

    return MemoPipeline(ns.models.networks, ns.vae, device=torch.device("cpu"), dtype=ns.models.dtype)


def library_settings(seed=42):
    from memo_pack.memo_model.job import SamplingSettings
    from memo_pack.memo_model.output.render import RenderSettings

    return RenderSettings.of(SamplingSettings(steps=STEPS, cfg=3.5, seed=seed, frames_per_clip=FPC, past_frames=FPC,
                                              initial_past_frames=FPC), fps=FPS, crf=18)


# --------------------------------------------------------------------------- MEMO Face List

def test_face_list_numbers_every_face_on_the_preview(dlg):
    from memo_model.face.overlay import PALETTE
    from memo_model.face.selection import FaceChoice

    assert [f.bbox.tolist() for f in dlg.faces.faces] == BOXES
    assert dlg.faces.picture.shape == (240, 480, 3) and dlg.faces.detection_threshold == 0.5
    assert dlg.faces_info.splitlines()[:3] == [
        "picture 480x240: 2 faces (0 = the largest)",
        "0: box (88, 79, 152, 161), centre (120, 120), score 0.877",
        "1: box (328, 79, 392, 161), centre (360, 120), score 0.877"]
    preview = (dlg.preview[0].numpy() * 255).round().astype(np.uint8)
    assert dlg.preview.shape == (1, 240, 480, 3)
    for k, (x1, y1, x2, y2) in enumerate(BOXES):          # each box outlined in its index's colour
        for x, y in ((x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2), ((x1 + x2) / 2, y2)):
            assert tuple(preview[int(y), int(x)]) == PALETTE[k], (k, x, y)
    picture = dlg.faces.picture
    assert np.array_equal(preview[170:], picture[170:])           # below the boxes: the picture itself
    assert np.array_equal(preview[:, 160:320], picture[:, 160:320])   # between them too
    assert not np.array_equal(preview[60:79, 88:120], picture[60:79, 88:120])   # the label tag above box 0
    # what the preview shows is what MEMO Speaker's face widget names
    assert FaceChoice.parse("1").index == 1
    with pytest.raises(ValueError, match=r"^image: no face found in the 96x96 picture at detection_threshold 0.50"):
        M["MemoFaceList"].execute(dlg.face_model, torch.zeros(1, 96, 96, 3), 0.5)
    with pytest.raises(ValueError, match="detection_threshold"):
        M["MemoFaceList"].execute(dlg.face_model, dlg.image, 1.5)


# --------------------------------------------------------------------------- MEMO Speaker

def test_speakers_chain_in_order_without_changing_the_earlier_chain(dlg):
    first, _ = M["MemoSpeaker"].execute(dlg.audio["a"], "0")
    both, info = M["MemoSpeaker"].execute(dlg.audio["b"], " 340,100 ", channel=0, emotion="happy", face_seed=7,
                                          speakers=first)
    assert len(first) == 1 and len(both) == 2 and both[0] is first[0]
    assert (both[1].face, both[1].channel, both[1].emotion, both[1].seed) == ("340,100", 0, "happy", 7)
    assert (first[0].channel, first[0].seed, first[0].emotion) == (None, None, "")
    assert info.splitlines() == [
        "speaker 1: face 0, voice 0.50 s, 16000 Hz, 1 channel, emotion detected, seed: the render's + 0",
        "speaker 2: face 340,100, voice 0.30 s, 16000 Hz, 1 channel, channel 0, emotion happy, seed 7"]
    assert first[0].fingerprint != both[1].fingerprint


def test_speaker_widgets_are_checked_when_the_prompt_is_queued(dlg):
    check = M["MemoSpeaker"].validate_inputs                       # ComfyUI shows "face - <what it returns>"
    assert check("0") is True and check("120,80") is True and check("1, 2, 3, 4") is True
    assert check(None) is True                                         # linked: checked when the node runs
    assert check("left").startswith("face 'left': give an index (0 = largest face)")
    assert check("1,2,3").startswith("face '1,2,3': give an index")
    with pytest.raises(ValueError, match=r"^emotion: .*unknown emotion"):       # when the node runs
        M["MemoSpeaker"].execute(dlg.audio["a"], "0", emotion="elated")
    with pytest.raises(ValueError, match="channel -2"):         # the pack's JobError
        M["MemoSpeaker"].execute(dlg.audio["a"], "0", channel=-2)
    with pytest.raises(ValueError, match="face: face 'x'"):
        M["MemoSpeaker"].execute(dlg.audio["a"], "x")
    with pytest.raises(ValueError, match="speakers: expected MEMO_SPEAKERS"):
        M["MemoSpeaker"].execute(dlg.audio["a"], "0", speakers=["not a chain"])


# --------------------------------------------------------------------------- refused before model work

class _NoModelWork:
    """A wav2vec value whose model must never be loaded (the refusals come first)."""

    fingerprint = "never"

    class managed:
        @staticmethod
        def load(memory_required=0):
            raise AssertionError("a model was loaded before the input checks")

    encoder = None


@pytest.mark.parametrize("case, entries, kw, message", [
    ("face index", [("a", "0"), ("b", "5")], {},
     "speaker 2: face index 5 requested but 2 faces were found (indices 0 to 1, 0 is the largest; "
     "0 at [88, 79, 152, 161], 1 at [328, 79, 392, 161])"),
    ("point", [("a", "10,10")], {}, "speaker 1: point (10, 10) lies in none of the face boxes (2 faces found"),
    ("one face twice", [("a", "0"), ("b", "120,120")], {},
     "speaker 2: chooses face 0 at [88, 79, 152, 161], as speaker 1 does; each face takes one voice"),
    ("all silent", [("silent", "0"), ("silent", "1")], {}, "every voice is silent ("),
    ("channel", [("a", "0"), ("b", "1", {"channel": 1})], {}, "speaker 2: channel 1 requested but "),
    ("emotion time", [("a", "0", {"emotion": "0s:happy, 9s:sad"})], {"emotion_model": None},
     "speaker 1: emotion: "),
    ("no emotion model", [("a", "0", {"emotion": "neutral"}), ("b", "1")], {"emotion_model": None},
     "emotion_model: not connected, and speaker 2 has no emotion override from 0 s"),
    ("no separator", [("a", "0")], {"separator": None}, "separator: vocal_separation is on but no vocal separator"),
])
def test_bad_dialogues_are_refused_before_any_model_work(dlg, case, entries, kw, message):
    with pytest.raises(ValueError) as err:
        prep(dlg, speakers(dlg, *entries), wav2vec=_NoModelWork(), **kw)
    assert str(err.value).startswith(message), (case, str(err.value))


def test_missing_speakers_and_faces_are_named(dlg):
    with pytest.raises(ValueError, match=r"^speakers: no speaker; connect a chain of MEMO Speaker nodes"):
        prep(dlg, None, wav2vec=_NoModelWork())
    with pytest.raises(ValueError, match=r"^faces: expected MEMO_FACES from MEMO Face List"):
        prep(dlg, speakers(dlg, ("a", "0")), faces=dlg.image, wav2vec=_NoModelWork())
    with pytest.raises(ValueError, match=r"^dialogue: expected MEMO_DIALOGUE"):
        render(dlg, None)


# --------------------------------------------------------------------------- the render

def test_the_node_route_writes_the_command_line_routes_mp4(dlg, tmp_path):
    """Face List -> Speaker x2 -> Dialogue Prep -> Render Dialogue == prepare_dialogue on the files +
    render_dialogue, byte for byte (voices of different lengths: the shorter one padded with silence)."""
    from memo_model.output.probe import probe_video
    from memo_pack.memo_model.apps.dialogue_inputs import Speaker, prepare_dialogue
    from memo_pack.memo_model.output.dialogue import render_dialogue

    dialogue, references, info = prep(dlg, speakers(dlg, ("a", "0"), ("b", "1")))
    assert dialogue.num_frames == 15 and dialogue.num_faces == 2 and references.shape == (2, SIZE, SIZE, 3)
    assert "speaker 2: face 1 (box 328, 79, 392, 161)" in info and "voice 0.30 s" in info
    path, ui = render(dlg, dialogue)
    assert ui["images"][0]["filename"] == path.name and ui["animated"] == [True]
    probe = probe_video(path)
    assert (probe.num_frames, probe.width, probe.height) == (15, 480, 240)
    assert probe.audio_seconds == pytest.approx(0.5, abs=0.07)

    inputs = prepare_dialogue(dlg.picture, [Speaker(0, dlg.files["a"]), Speaker(1, dlg.files["b"])],
                              load_analyzer=lambda: dlg.face_model.analyzer, load_encoder=lambda: dlg.wav2vec.encoder,
                              load_separator=lambda: dlg.separator.separator,
                              load_emotion_detector=lambda: dlg.emotion_model.detector, size=SIZE, fps=FPS,
                              frames_per_clip=FPC)
    with torch.inference_mode():
        render_dialogue(library_pipeline(dlg), output=tmp_path / "cli.mp4", settings=library_settings(),
                        **inputs.render_kwargs())
    assert path.read_bytes() == (tmp_path / "cli.mp4").read_bytes()


def test_a_listening_face_and_a_given_mix(dlg):
    from memo_model.output.probe import probe_video
    from memo_pack.nodes.ops_audio import decode_audio_file

    mix_path = Path(dlg.root) / "input" / "mix.wav"
    t = np.arange(int(0.6 * 44100)) / 44100
    tf.write_wav(mix_path, np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2), sample_rate=44100)
    mix = decode_audio_file(mix_path)
    dialogue, _refs, info = prep(dlg, speakers(dlg, ("a", "0"), ("silent", "1")), mix=mix)
    assert "speaker 2: face 1" in info and "(listens: silent)" in info and "this face listens" in info
    assert dialogue.num_frames == 18                                     # the mix is the longest: 0.6 s
    path, _ui = render(dlg, dialogue, filename_prefix="MEMO/listener")
    probe = probe_video(path)
    assert probe.num_frames == 18 and probe.audio_sample_rate == 44100 and probe.audio_channels == 2
    assert probe.audio_seconds == pytest.approx(0.6, abs=0.05)


def test_two_samplers_pasted_onto_the_picture_are_the_dialogues_frames(dlg, tmp_path):
    """The IMAGE route: Face Prep (index 0, 1) -> Audio Encode / Detect Emotion -> MEMO Sampler (seeds
    42, 43) -> Paste Back Onto the picture -> Paste Back Onto that == the dialogue render's frames."""
    from memo_model.output.media import to_uint8
    from memo_pack.memo_model.output.dialogue import render_dialogue
    from memo_pack.nodes.ops_dialogue import dialogue_faces

    with torch.inference_mode():
        frames = []
        for index, key, seed in ((0, "a", 42), (1, "c", 43)):
            face, _ref, _info = M["MemoFacePrep"].execute(dlg.face_model, dlg.image, "crop", SIZE, SIZE, 2.0, 0.0,
                                                          index, False)
            feats, _n, _s = M["MemoAudioEncode"].execute(dlg.wav2vec, dlg.audio[key], FPS, True, FPC, dlg.separator)
            emotion, _t = M["MemoDetectEmotion"].execute(dlg.audio[key], dlg.emotion_model, "")
            images, _audio, _fps, _state = M["MemoSampler"].execute(dlg.models, dlg.vae, face, feats, emotion, STEPS,
                                                                    3.5, seed, FPC, FPC, 0, None, FPC)
            frames.append((images, face))
        onto, = M["MemoPasteBackOnto"].execute(frames[0][0], frames[0][1], dlg.image, 0.1).args
        onto, = M["MemoPasteBackOnto"].execute(frames[1][0], frames[1][1], onto, 0.1).args
    got = to_uint8(onto)

    dialogue, _refs, _info = prep(dlg, speakers(dlg, ("a", "0"), ("c", "1")))
    clips = []
    with torch.inference_mode():
        render_dialogue(library_pipeline(dlg), faces=dialogue_faces(dialogue, FPC, 0.1),
                        num_frames=dialogue.num_frames, audio=dialogue.inputs.audio, sample_rate=16000,
                        output=tmp_path / "d.mp4", picture=dialogue.inputs.picture, settings=library_settings(),
                        on_clip=lambda c, f: clips.append(f.copy()))
    expected = np.concatenate(clips)
    assert got.shape == expected.shape == (15, 240, 480, 3)
    assert np.array_equal(got, expected)
    picture = dlg.faces.picture
    assert np.array_equal(got[:, :, 230:250], np.broadcast_to(picture[:, 230:250], got[:, :, 230:250].shape))
    assert not np.array_equal(got[:, 79:161, 88:152], got[:, 79:161, 328:392])    # each face its own


def test_paste_back_onto_the_picture_is_paste_back(dlg):
    """One face onto the picture: the frames MEMO Paste Back makes, as the video stores them (8-bit)."""
    from memo_model.output.media import to_uint8

    face, _r, _i = M["MemoFacePrep"].execute(dlg.face_model, dlg.image, "crop", SIZE, SIZE, 2.0, 0.0, 1, False)
    frames = torch.rand(3, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    onto, = M["MemoPasteBackOnto"].execute(frames, face, dlg.image, 0.25).args
    back, = M["MemoPasteBack"].execute(frames, face, 0.25).args
    assert onto.shape == back.shape == (3, 240, 480, 3)
    assert np.array_equal(to_uint8(onto), to_uint8(back))
    assert torch.equal(onto, torch.from_numpy(to_uint8(onto)).float() / 255)    # 8-bit values: exact round trips
    with pytest.raises(ValueError, match=r"^background: expected the picture the face was framed in, \[1, 240, 480, 3\]"
                                         r", or 3 frames"):
        M["MemoPasteBackOnto"].execute(frames, face, torch.cat([dlg.image] * 2), 0.1)
    with pytest.raises(ValueError, match=r"^images: expected frames \[T, 64, 64, 3\]"):
        M["MemoPasteBackOnto"].execute(frames[:, :32], face, dlg.image, 0.1)
    assert torch.equal(dlg.image, lib.load_image_tensor(dlg.picture))          # the input is never written to


def test_an_interrupted_render_resumes_through_the_node_byte_identical(dlg):
    dialogue, _refs, _info = prep(dlg, speakers(dlg, ("a", "0"), ("b", "1")))
    reference, _ = render(dlg, dialogue, filename_prefix="MEMO/whole", resume=False)
    seen = []

    def stop_in_the_second_face(value, total, preview):
        seen.append((value, total))
        if value > STEPS:                          # clip 0: face 1 done (checkpointed), face 2 started
            STANDIN.request_interrupt()

    STANDIN.set_progress_hook(stop_in_the_second_face)
    try:
        with pytest.raises(MemoInterrupted):
            render(dlg, dialogue, filename_prefix="MEMO/resumed", resume=True)
    finally:
        STANDIN.set_progress_hook(None)
        STANDIN.clear_interrupt()
    assert seen[-1][1] == 2 * 2 * STEPS                              # clips x faces x steps
    out = Path(dlg.root) / "output" / "MEMO"
    checkpoint = out / "resumed_00001_.mp4.memo-resume"
    assert checkpoint.is_dir() and not (out / "resumed_00001_.mp4").exists()
    values = []
    STANDIN.set_progress_hook(lambda value, total, preview: values.append(value))
    try:
        path, _ui = render(dlg, dialogue, filename_prefix="MEMO/resumed", resume=True)
    finally:
        STANDIN.set_progress_hook(None)
    assert path.name == "resumed_00001_.mp4" and not checkpoint.exists()
    # it continued in the second face (interruption points repeat a count; face 1's steps never come again)
    assert min(values) == STEPS and STEPS + 1 in values
    assert path.read_bytes() == reference.read_bytes()


def test_the_model_manager_is_asked_for_one_faces_memory(dlg, monkeypatch):
    from memo_pack.memo_model.apps.memory_plan import activation_bytes_required
    from memo_pack.nodes.ops_dialogue import dialogue_pipeline

    asked = []
    load = STANDIN.load
    monkeypatch.setattr(STANDIN, "in_comfyui", True)
    monkeypatch.setattr(STANDIN, "load", lambda c, h, memory_required=0: asked.append(memory_required) or
                        load(c, h, memory_required))
    for faces in (1, 3):
        dialogue_pipeline(dlg.models, dlg.vae, (SIZE, SIZE), faces, FPC, 3.5)
    single = activation_bytes_required(dlg.models.networks, SIZE, SIZE, FPC, 3.5, "default", dlg.models.dtype)
    assert single > 0 and asked == [single, single]


def test_render_dialogue_tells_the_client_what_render_video_tells(dlg):
    """Settings far from the trained ones reach the node's text (canvas, /history) in the command
    line's words; a linked prefix that leaves the output folder is refused before any model work."""
    dialogue, _refs, _info = prep(dlg, speakers(dlg, ("a", "0"), ("b", "1")))
    path, ui = render(dlg, dialogue, cfg=25.0, past_frames=4, filename_prefix="MEMO/warned")
    assert path.is_file() and ui["images"][0]["filename"] == path.name             # the video is still shown
    assert ui["text"] == ["warning: past_frames 4: MEMO was trained with 16; far from it the motion can flicker "
                          "or drift", "warning: cfg 25: far above the default 3.5; expect burnt colours"]
    calls = []
    STANDIN.set_progress_hook(lambda *a: calls.append(a))
    try:
        with pytest.raises(ValueError, match="filename_prefix: '../outside' leaves the folder"):
            render(dlg, dialogue, filename_prefix="../outside")
    finally:
        STANDIN.set_progress_hook(None)
    assert calls == []                                                   # no step was sampled
