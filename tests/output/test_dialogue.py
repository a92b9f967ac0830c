"""Dialogue: several faces of one picture, each with its own voice, composited into one mp4.

On tiny random weights and the tiny front ends (the demo picture's faces are found by the tiny
detector): a dialogue equals its single-face renders composited, overlaps follow the stated
order, silence animates, resume is byte-identical, bad input is refused before model work."""
import dataclasses
import math
import wave

import numpy as np
import pytest
import torch

from memo_model.apps import tiny_frontends as tf
from memo_model.apps.dialogue_inputs import Speaker, prepare_dialogue
from memo_model.apps.download import location
from memo_model.audio.voices import FULL_SCALE, VoiceProblems, VoiceSource, load_voices
from memo_model.face.selection import FaceChoice, FaceSelectionError, choose_face
from memo_model.output.dialogue import DialogueCheckpoint, composite_clip, render_dialogue
from memo_model.output.media import to_uint8
from memo_model.output.render import RenderInputs, RenderSettings, render_video, resume_dir_for
from memo_model.output.video import Mp4Writer

SIZE = 64
FPC = 8
SETTINGS = RenderSettings(steps=2, frames_per_clip=FPC, past_frames=FPC, initial_past_frames=FPC,
                          clips_per_segment=1, preset="ultrafast")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from memo_model.audio import AudioEncoder
    from memo_model.audio.emotion import EmotionDetector
    from memo_model.face import FaceAnalyzer
    from memo_model.generation.pipeline import MemoPipeline

    root = tmp_path_factory.mktemp("dialogue")
    models = root / "models"
    tf.write_tiny_models(models)
    voices = tf.write_demo_voices(root, seconds=(0.5, 0.3))             # 15 and 9 frames at 30 fps
    silent = tf.write_wav(root / "silent.wav", np.zeros(4800))
    loaders = dict(load_analyzer=lambda: FaceAnalyzer.from_pretrained(location("face", models)),
                   load_encoder=lambda: AudioEncoder.from_pretrained(location("wav2vec", models)),
                   load_emotion_detector=lambda: EmotionDetector.from_pretrained(
                       location("emotion2vec", models), location("emotion_classifier", models)))
    pipeline = MemoPipeline.from_pretrained(location("memo", models), location("vae", models))
    return dict(root=root, picture=tf.write_demo_dialogue_picture(root / "two.png"), voices=voices, silent=silent,
                loaders=loaders, pipeline=pipeline)


def prepare(demo, speakers, **kwargs):
    kwargs = {"size": SIZE, "frames_per_clip": FPC, **demo["loaders"], **kwargs}
    return prepare_dialogue(demo["picture"], speakers, **kwargs)


def collect(into):
    return lambda c, frames: into.append(frames.copy())


def roi(framing):
    x0, y0, x1, y1 = framing.box
    w, h = framing.image_size
    return slice(max(y0, 0), min(y1, h)), slice(max(x0, 0), min(x1, w))


def single_render(demo, inputs, k, out, settings=SETTINGS):
    """Face k alone, as a single-face render of its crop (same voice features, emotion, seed)."""
    face, frames = inputs.faces[k], []
    render_video(demo["pipeline"], RenderInputs(reference=face.reference, face_embedding=face.face_embedding,
                                                audio_features=face.audio_features, num_frames=inputs.num_frames,
                                                emotion=face.emotion, audio=inputs.audio,
                                                sample_rate=inputs.sample_rate), out,
                 settings=dataclasses.replace(settings, seed=settings.seed + k), paste_back=face.framing.paste_back,
                 on_clip=collect(frames))
    return np.concatenate(frames)


def generated(demo, inputs, k, settings=SETTINGS):
    """Face k's generated frames before paste-back (one generate call equals the clip-by-clip one)."""
    face = inputs.faces[k]
    out = demo["pipeline"].generate(face.reference, face.face_embedding, face.audio_features, face.emotion,
                                    num_inference_steps=settings.steps, guidance_scale=settings.cfg,
                                    seed=settings.seed + k, frames_per_clip=FPC, past_frames=FPC,
                                    initial_past_frames=FPC)
    return out.frames[:inputs.num_frames]


# --------------------------------------------------------------------------- the demo material

def test_the_tiny_detector_finds_every_demo_face_largest_first_then_left_to_right(demo, tmp_path):
    from memo_model.face import FaceAnalyzer

    analyzer = demo["loaders"]["load_analyzer"]()
    assert isinstance(analyzer, FaceAnalyzer)
    three = tf.demo_dialogue_picture(3)                                  # 160 px tiles
    boxes = [f.bbox.tolist() for f in analyzer.analyze(three)]
    assert boxes == [[59.0, 52.0, 101.0, 108.0], [219.0, 52.0, 261.0, 108.0], [379.0, 52.0, 421.0, 108.0]]
    # each box is its tile's face oval (centre, 0.26 x 0.34 of the tile), to a pixel
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        assert abs((x1 + x2) / 2 - (80 + 160 * k)) <= 0.5 and abs((y1 + y2) / 2 - 80) <= 0.5
        assert abs((x2 - x1) - 0.26 * 160) <= 1.5 and abs((y2 - y1) - 0.34 * 160) <= 2
    mixed = analyzer.analyze(tf.demo_dialogue_picture(3, sizes=[128, 192, 160]))   # sizes decide first
    assert [round(float(f.bbox[0] + f.bbox[2]) / 2) for f in mixed] == [224, 400, 64]
    assert analyzer.analyze(np.zeros((120, 200, 3), np.uint8)) == []


def test_demo_voices_differ_and_voice_0_is_the_old_demo_voice(tmp_path):
    a, b = tf.write_demo_voices(tmp_path, seconds=(0.5, 0.3))
    from memo_model.audio import load_audio
    va, vb = load_audio(a), load_audio(b)
    assert (va.num_samples, vb.num_samples) == (8000, 4800)
    assert not torch.equal(va.samples[:, :4800], vb.samples)
    assert a.read_bytes() == tf.write_demo_voice(tmp_path / "old.wav", seconds=0.5).read_bytes()


# --------------------------------------------------------------------------- choosing faces

def test_faces_are_chosen_by_index_point_or_box(demo):
    faces = demo["loaders"]["load_analyzer"]().analyze(tf.demo_dialogue_picture(3, sizes=[128, 192, 160]))
    # index 0 is the middle (largest) tile, 1 the right one, 2 the left one
    assert choose_face(faces, "2") == 2 and choose_face(faces, 0) == 0
    assert choose_face(faces, "64,64") == 2 and choose_face(faces, (400, 80)) == 1
    assert choose_face(faces, FaceChoice(box=(180, 50, 260, 140))) == 0
    with pytest.raises(FaceSelectionError, match=r"^face index 3 requested but 3 faces were found \(indices 0 to 2"):
        choose_face(faces, 3)
    with pytest.raises(FaceSelectionError, match=r"point \(5, 5\) lies in none of the face boxes \(3 faces found"):
        choose_face(faces, "5,5")
    with pytest.raises(FaceSelectionError, match=r"box \[0, 150, 20, 190\] overlaps none"):
        choose_face(faces, "0,150,20,190")
    with pytest.raises(ValueError, match="give an index"):
        FaceChoice.parse("left")


# --------------------------------------------------------------------------- voices

def test_voices_from_channels_equal_separate_files_and_the_mix_does_not_clip(demo, tmp_path):
    a, b = demo["voices"]
    from memo_model.audio import load_audio
    sa, sb = load_audio(a).samples[0].numpy(), load_audio(b).samples[0].numpy()
    pcm = np.zeros((len(sa), 2), "<i2")                                 # the same 16-bit samples, interleaved
    pcm[:, 0], pcm[:len(sb), 1] = np.round(sa * 32768), np.round(sb * 32768)
    both = tmp_path / "both.wav"
    with wave.open(str(both), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    separate = load_voices([a, b])
    channels = load_voices([VoiceSource(both, channel=0), VoiceSource(both, channel=1)])
    for x, y in zip(separate.voices, channels.voices):
        assert torch.equal(x.samples, y.samples)                        # padded with zeros to 0.5 s
    assert separate.lengths == [8000, 4800] and separate.num_samples == 8000
    assert torch.equal(separate.voices[1].samples[:, 4800:], torch.zeros(1, 3200))
    assert torch.allclose(separate.mix[0], torch.from_numpy(np.pad(sb, (0, 3200)) + sa), atol=1e-6)
    # loud voices: one gain for the whole sum, its peak at full scale
    loud = [tf.write_wav(tmp_path / f"loud{k}.wav", 0.9 * np.sin(np.arange(4000) / 7.0)) for k in range(2)]
    mixed = load_voices(loud)
    assert math.isclose(float(mixed.mix.abs().max()), FULL_SCALE, rel_tol=1e-6)
    assert torch.allclose(mixed.mix[0], mixed.voices[0].samples[0] * FULL_SCALE / mixed.voices[0].samples.abs().max())
    # a given mix is the soundtrack, as long as the longest input
    given = load_voices([a, b], mix=b)
    assert given.mix_given and torch.equal(given.mix[:, :4800], load_audio(b).samples)
    assert given.num_samples == 8000


def test_bad_voices_are_refused_together_naming_each_option(demo, tmp_path):
    a, b = demo["voices"]
    with pytest.raises(VoiceProblems) as err:
        load_voices([tmp_path / "nope.wav", VoiceSource(a, channel=1)], names=["--face 0=nope.wav", "--face 1=a.wav:1"])
    lines = str(err.value).splitlines()
    assert lines[0].startswith("--face 0=nope.wav: ") and "nope.wav" in lines[0]
    assert lines[1].startswith("--face 1=a.wav:1: channel 1 requested but") and "has 1 channel (0)" in lines[1]
    with pytest.raises(VoiceProblems) as err:
        load_voices([a, b], max_seconds=0.4)
    assert err.value.too_long and str(err.value).startswith("face 1: ") and len(err.value.problems) == 1
    with pytest.raises(VoiceProblems, match=r"^every voice is silent \(.*silent.wav' is silent"):
        load_voices([demo["silent"], demo["silent"]])
    listening = load_voices([a, demo["silent"]], names=["--face 0=a.wav", "--face 1=silent.wav"])
    assert listening.listeners == [1]
    assert listening.warnings[0].startswith("--face 1=silent.wav: ") and "this face listens" in listening.warnings[0]


def test_bad_choices_are_refused_before_any_model_work(demo):
    a, b = demo["voices"]

    def never():
        raise AssertionError("a model was loaded before the input checks")

    loaders = dict(load_analyzer=never, load_encoder=never, load_emotion_detector=never)
    with pytest.raises(VoiceProblems, match=r"^--face 1=gone.wav: audio file '.*gone.wav'"):
        prepare(demo, [Speaker(0, a), Speaker(1, demo["root"] / "gone.wav", name="--face 1=gone.wav")], **loaders)
    with pytest.raises(VoiceProblems, match="every voice is silent"):
        prepare(demo, [Speaker(0, demo["silent"]), Speaker(1, demo["silent"])], **loaders)
    with pytest.raises(FaceSelectionError, match=r"^--face x=a.wav: face 'x': give an index"):
        prepare(demo, [Speaker("x", a, name="--face x=a.wav")], **loaders)
    with pytest.raises(ValueError, match=r"^face 2: emotion: "):
        prepare(demo, [Speaker(0, a), Speaker(1, b, emotion="furious")], **loaders)
    # face indices need the detector (cheap), but nothing after it
    detect_only = dict(loaders, load_analyzer=demo["loaders"]["load_analyzer"])
    with pytest.raises(FaceSelectionError) as err:
        prepare(demo, [Speaker(0, a, name="--face 0=a.wav"), Speaker(5, b, name="--face 5=b.wav")], **detect_only)
    assert str(err.value) == ("--face 5=b.wav: face index 5 requested but 2 faces were found (indices 0 to 1, 0 is "
                              "the largest; 0 at [88, 79, 152, 161], 1 at [328, 79, 392, 161])")
    with pytest.raises(FaceSelectionError, match=r"^face 2: chooses face 0 at \[88, 79, 152, 161\], as face 1 does"):
        prepare(demo, [Speaker(0, a), Speaker("120,120", b)], **detect_only)


def test_paste_into_blends_over_the_canvas_and_leaves_the_rest(tmp_path):
    from memo_model.face import frame_portrait

    picture = tf.demo_dialogue_picture(2)
    _, framing = frame_portrait(picture, (88, 79, 152, 161), size=SIZE)
    frame = torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
    canvas = picture.copy()
    assert framing.paste_into(frame, canvas) is canvas
    assert np.array_equal(canvas, framing.paste_back_uint8(frame))         # over the picture: the single paste
    ys, xs = roi(framing)
    canvas[ys, xs] = 255                                                   # another face already there
    again = framing.paste_into(frame, canvas.copy())
    single = framing.paste_back_uint8(frame)[ys, xs].astype(int)
    inner = framing.mask()[ys, xs] == 1.0                                  # the face's own pixels (+-1: float blend)
    assert np.abs(again[ys, xs][inner] - single[inner]).max() <= 1
    edge = again[ys, xs][~inner] - single[~inner]                          # the feather blends over the white
    assert edge.min() >= -1 and (edge > 10).mean() > 0.5
    outside = np.ones(picture.shape[:2], bool)
    outside[ys, xs] = False
    assert np.array_equal(again[outside], picture[outside])
    with pytest.raises(ValueError, match=r"writable uint8 numpy canvas \[240, 480, 3\]"):
        framing.paste_into(frame, picture.astype(np.float32))
    with pytest.raises(ValueError, match=r"frame must be \[64, 64, 3\]"):
        framing.paste_into(frame[:32], picture.copy())


# --------------------------------------------------------------------------- rendering

def test_two_faces_equal_their_single_renders_composited(demo, tmp_path):
    a, b = demo["voices"]
    inputs = prepare(demo, [Speaker(0, a), Speaker(1, b)])
    assert inputs.num_frames == 15 and inputs.chosen == [0, 1]
    (ya, xa), (yb, xb) = roi(inputs.faces[0].framing), roi(inputs.faces[1].framing)
    assert xa.stop <= xb.start                                           # the crops do not overlap
    clips = []
    result = render_dialogue(demo["pipeline"], output=tmp_path / "talk.mp4", settings=SETTINGS,
                             on_clip=collect(clips), **inputs.render_kwargs())
    got = np.concatenate(clips)
    assert result.seeds == [42, 43] and result.num_faces == 2 and (result.width, result.height) == (480, 240)

    first = single_render(demo, inputs, 0, tmp_path / "a.mp4")
    second = single_render(demo, inputs, 1, tmp_path / "b.mp4")
    expected = first.copy()
    expected[:, yb, xb] = second[:, yb, xb]
    assert got.shape == (15, 240, 480, 3) and np.array_equal(got, expected)
    # outside every crop: the picture
    picture = inputs.picture
    outside = np.ones(picture.shape[:2], bool)
    outside[ya, xa] = outside[yb, xb] = False
    assert np.array_equal(got[:, outside], np.broadcast_to(picture[outside], got[:, outside].shape))
    # the mp4 is those frames, encoded as a single render encodes them, with the mix as its audio
    check = tmp_path / "expected.mp4"
    writer = Mp4Writer(check, fps=SETTINGS.fps, num_frames=15, audio=inputs.audio, sample_rate=inputs.sample_rate,
                       crf=SETTINGS.crf, preset=SETTINGS.preset, segment_frames=SETTINGS.clips_per_segment * FPC)
    writer.write(expected[:FPC])
    writer.write(expected[FPC:])
    writer.close()
    assert (tmp_path / "talk.mp4").read_bytes() == check.read_bytes()
    # face 2's voice ends after 9 frames: its face goes on moving on silence to the end
    tail = got[9:, yb, xb].astype(int)
    assert all(np.abs(np.diff(tail, axis=0)).reshape(len(tail) - 1, -1).max(axis=1) > 10)


def test_overlapping_crops_paste_later_faces_over_earlier(demo, tmp_path):
    a, b = demo["voices"]
    inputs = prepare(demo, [Speaker(1, b), Speaker(0, a)], crop_scale=4.0)   # right face first
    first, second = inputs.faces[0].framing, inputs.faces[1].framing
    overlap = first.mask() * second.mask() > 0
    assert overlap.sum() > 1000
    clips = []
    render_dialogue(demo["pipeline"], output=tmp_path / "talk.mp4", settings=SETTINGS, on_clip=collect(clips),
                    **inputs.render_kwargs())
    got = np.concatenate(clips)
    f1, f2 = generated(demo, inputs, 0), generated(demo, inputs, 1)
    # the rule through the float paste-back: face 2 blended with its feather over face 1 over the picture
    under = to_uint8(first.paste_back(f1))
    expected = np.stack([to_uint8(second.paste_back(f2[t:t + 1], background=under[t]))[0] for t in range(len(f2))])
    assert np.array_equal(got, expected)
    reverse = to_uint8(second.paste_back(f2))
    reversed_order = np.stack([to_uint8(first.paste_back(f1[t:t + 1], background=reverse[t]))[0]
                               for t in range(len(f1))])
    assert not np.array_equal(got[:, overlap], reversed_order[:, overlap])      # the order matters
    assert np.array_equal(composite_clip(inputs.picture, [first, second], [f1[:FPC], f2[:FPC]]), got[:FPC])


def test_a_listening_face_is_animated_on_silence(demo, tmp_path):
    a, _ = demo["voices"]
    logged = []
    inputs = prepare(demo, [Speaker(0, a), Speaker(1, demo["silent"], name="--face 1=silent.wav")], log=logged.append)
    assert inputs.voices.listeners == [1] and any("this face listens" in m for m in logged)
    clips = []
    render_dialogue(demo["pipeline"], output=tmp_path / "talk.mp4", settings=SETTINGS, on_clip=collect(clips),
                    **inputs.render_kwargs())
    ys, xs = roi(inputs.faces[1].framing)
    face = np.concatenate(clips)[:, ys, xs].astype(int)
    still = np.broadcast_to(inputs.picture[ys, xs], face.shape)
    assert (np.abs(face - still).reshape(len(face), -1).max(axis=1) > 10).all()   # generated, not the picture
    assert (np.abs(np.diff(face, axis=0)).reshape(len(face) - 1, -1).max(axis=1) > 10).all()   # and not frozen


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("clip,face,segment", [(1, 1, 1), pytest.param(1, 0, 2, marks=pytest.mark.slow),
                                               pytest.param(0, 1, 2, marks=pytest.mark.slow)])
def test_resume_continues_after_the_last_finished_face_clip_byte_for_byte(demo, tmp_path, clip, face, segment):
    a, b = demo["voices"]
    inputs = prepare(demo, [Speaker(0, a), Speaker(1, b)])
    settings = dataclasses.replace(SETTINGS, clips_per_segment=segment)
    reference = tmp_path / "reference.mp4"
    render_dialogue(demo["pipeline"], output=reference, settings=settings, **inputs.render_kwargs())

    def crash(p):
        if (p.clip, p.face) == (clip, face):
            raise Crash(f"crash in clip {clip}, face {face}")

    out = tmp_path / "talk.mp4"
    with pytest.raises(Crash):
        render_dialogue(demo["pipeline"], output=out, settings=settings, resume=True, progress=crash,
                        max_checkpoint_share=None, **inputs.render_kwargs())
    stored = [p for p in resume_dir_for(out).iterdir() if p.name.startswith("state-")]
    assert len(stored) == 1
    ckpt, extra = DialogueCheckpoint.load_with_extra(stored[0])
    assert extra["render_fingerprint"]
    assert (ckpt.clips_done, ckpt.faces_done) == (clip, face)
    assert [s.clip_index if s else 0 for s in ckpt.states] == [clip + (k < face) for k in range(2)]
    seen = []
    result = render_dialogue(demo["pipeline"], output=out, settings=settings, resume=True, progress=seen.append,
                             **inputs.render_kwargs())
    assert result.resumed_face_clips == 2 * clip + face
    assert (seen[0].clip, seen[0].face) == (clip, face)                  # nothing finished is generated again
    assert out.read_bytes() == reference.read_bytes()
    assert not resume_dir_for(out).exists()


def test_a_changed_face_is_not_resumed(demo, tmp_path):
    a, b = demo["voices"]
    inputs = prepare(demo, [Speaker(0, a), Speaker(1, b)])

    def crash(p):
        if p.clip == 1:
            raise Crash("crash")

    out = tmp_path / "talk.mp4"
    with pytest.raises(Crash):
        render_dialogue(demo["pipeline"], output=out, settings=SETTINGS, resume=True, progress=crash,
                        max_checkpoint_share=None, **inputs.render_kwargs())
    inputs.faces[1].seed = 7
    logged = []
    result = render_dialogue(demo["pipeline"], output=out, settings=SETTINGS, resume=True, log=logged.append,
                             **inputs.render_kwargs())
    assert result.resumed_face_clips == 0 and result.seeds == [42, 7]
    assert any("face1.settings" in m and "starts over" in m for m in logged)


def test_a_tampered_face_state_is_refused_and_the_render_starts_over(demo, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    a, b = demo["voices"]
    inputs = prepare(demo, [Speaker(0, a), Speaker(1, b)])
    reference = tmp_path / "reference.mp4"
    render_dialogue(demo["pipeline"], output=reference, settings=SETTINGS, **inputs.render_kwargs())

    def crash(p):
        if (p.clip, p.face) == (1, 1):
            raise Crash("crash")

    out = tmp_path / "talk.mp4"
    with pytest.raises(Crash):
        render_dialogue(demo["pipeline"], output=out, settings=SETTINGS, resume=True, progress=crash,
                        max_checkpoint_share=None, **inputs.render_kwargs())
    (stored,) = [p for p in resume_dir_for(out).iterdir() if p.name.startswith("state-")]
    with safe_open(str(stored), framework="pt") as fh:
        tensors, meta = {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()
    tensors["face0.rng_state"] = tensors["face0.rng_state"][:-8].clone()      # a cut RNG state
    save_file(tensors, str(stored), metadata=meta)
    logged = []
    result = render_dialogue(demo["pipeline"], output=out, settings=SETTINGS, resume=True, log=logged.append,
                             **inputs.render_kwargs())
    assert result.resumed_face_clips == 0
    assert any("not a valid dialogue checkpoint" in m and "face 1's state: rng_state" in m for m in logged), logged
    assert out.read_bytes() == reference.read_bytes()


def test_render_input_checks(demo, tmp_path):
    a, b = demo["voices"]
    inputs = prepare(demo, [Speaker(0, a), Speaker(1, b)])
    kwargs = inputs.render_kwargs()
    short = dataclasses.replace(inputs.faces[1], audio_features=inputs.faces[1].audio_features[:8],
                                emotion=inputs.faces[1].emotion[:8], name="--face 1=b.wav")
    with pytest.raises(ValueError, match=r"^--face 1=b.wav: audio features cover 8 frames but the dialogue has 15"):
        render_dialogue(demo["pipeline"], output=tmp_path / "x.mp4", **dict(kwargs, faces=[inputs.faces[0], short]))
    with pytest.raises(ValueError, match="picture is 100x50"):
        render_dialogue(demo["pipeline"], output=tmp_path / "x.mp4",
                        **dict(kwargs, picture=np.zeros((50, 100, 3), np.uint8)))
    assert not (tmp_path / "x.mp4").exists()


# --------------------------------------------------------------------------- memory plan

def test_memory_plan_of_a_dialogue_is_a_single_face_on_the_device(demo):
    from memo_model.apps.memory_plan import activation_bytes_required, dialogue_bytes_required, plan_dialogue

    nets = demo["pipeline"].networks
    single = activation_bytes_required(nets, SIZE, SIZE, FPC, 3.5)
    assert dialogue_bytes_required(nets, SIZE, SIZE, 1, FPC) == single
    assert dialogue_bytes_required(nets, SIZE, SIZE, 3, FPC) == single
    three = plan_dialogue(3, SIZE, SIZE, 480, 240, FPC, dtype="fp32", model_size="tiny")
    single_face = three["single_face"]
    assert three["device_peak_bytes"] == single_face["peak_bytes"] > single_face["activation_peak_bytes"] > 0
    assert three["host"]["composite_clip_bytes"] == FPC * 240 * 480 * 3
    assert three["host"]["waiting_states_bytes"] == 2 * single_face["state_bytes"] > 0
    assert three["host_bytes"] == sum(three["host"].values())
