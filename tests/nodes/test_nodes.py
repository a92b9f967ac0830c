"""The ComfyUI nodes, run in-process without ComfyUI (the pack's local fallback), on tiny random
weights: node definitions, loaders -> mp4, chunked rendering through MemoryStateCarry, errors."""
from __future__ import annotations

import dataclasses
import gc
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import memo_pack_testlib as lib
from memo_testing.pack import API_DOUBLE, load_pack, node_classes
from memo_testing.paths import REPO
from memo_testing.standin_host import STANDIN, MemoInterrupted

nodes = load_pack().nodes
host = nodes.host

M = node_classes()
FPS = 8                     # 2.0 s of audio -> 16 frames
FPC = 8                     # two clips
STEPS = 2
SIZE = 64
CORE_TYPES = {"IMAGE", "AUDIO", "VAE", "INT", "FLOAT", "STRING", "BOOLEAN", "VIDEO"}
FOREIGN_IDS = {"LoadAudio", "SaveAudio", "PreviewAudio", "SaveVideo", "CreateVideo", "LoadVideo", "GetVideoComponents",
               "VHS_VideoCombine", "VHS_LoadAudio", "IF_MemoAvatar", "IF_MemoCheckpointLoader", "CXH_Memo_Load",
               "CXH_Memo_Run", "AudioEncoderLoader", "AudioEncoderEncode", "VAELoader", "LoadImage"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("memo_pack")
    local = lib.LocalPack(root)
    ckpt = local.ckpt
    inputs = lib.write_inputs(root / "input")
    with torch.inference_mode():                       # ComfyUI runs every node under inference mode
        ns = SimpleNamespace(root=root, ckpt=ckpt, inputs=inputs, output=root / "output")
        ns.models, = M["MemoModelLoader"].execute("memo", "auto", False)
        ns.wav2vec, = M["MemoAudioModelLoader"].execute("memo/wav2vec2-base-960h", "fp32", False)
        ns.emotion_model, = M["MemoEmotionModelLoader"].execute("memo/emotion2vec_plus_large", "memo", "fp32", False)
        ns.separator, = M["MemoVocalSeparatorLoader"].execute("memo", False)
        ns.face_model, = M["MemoFaceModelLoader"].execute("memo", False)
        from memo_model.generation.vae import DiffusersVae
        ns.vae = DiffusersVae.from_pretrained(ckpt / "vae")   # stands in for ComfyUI's VAE (same protocol)
        ns.audio, = M["MemoLoadAudio"].execute(0.0, 0.0, lib.VOICE)
        ns.memo_audio, ns.frames, ns.duration = M["MemoAudioEncode"].execute(
            ns.wav2vec, ns.audio, FPS, True, FPC, ns.separator)
        ns.emotion, ns.timeline = M["MemoDetectEmotion"].execute(ns.audio, ns.emotion_model, "")
        ns.image = lib.load_image_tensor(inputs["portrait"])
        ns.face, ns.reference, ns.face_info = M["MemoFacePrep"].execute(
            ns.face_model, ns.image, "crop", SIZE, SIZE, 2.0, 0.0, 0, False)
    yield ns
    STANDIN.set_progress_hook(None)
    STANDIN.clear_interrupt()
    local.undo()


def sample(ns, **kw):
    args = dict(steps=STEPS, cfg=3.5, seed=7, frames_per_clip=FPC, past_frames=FPC, max_frames=0, state=None)
    args.update(kw)
    with torch.inference_mode():
        return M["MemoSampler"].execute(ns.models, ns.vae, ns.face, ns.memo_audio, ns.emotion, **args)


# --------------------------------------------------------------------------- definitions

def _inputs(cls):
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}, cls
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            yield section, name, entry


def combo_values(node_id: str, name: str) -> list:
    """The values of a dropdown (a V3 combo: type "COMBO", its values under "options")."""
    spec = M[node_id].INPUT_TYPES()
    kind, opts = {**spec["required"], **spec.get("optional", {})}[name]
    assert kind == "COMBO", (node_id, name, kind)
    return opts["options"]


FILE_COMBOS = {("MemoLoadAudio", "audio")}


def test_the_extension_registers_every_node_once():
    assert list(M.values()) == nodes.extension.NODES
    assert len(M) == 19 and len(set(M.values())) == 19
    assert M["MemoryStateCarry"] is nodes.state_nodes.MemoStateCarry           # the design card's id


@pytest.mark.parametrize("node_id", sorted(M))
def test_node_definition_is_valid(node_id):
    cls = M[node_id]
    schema = cls.GET_SCHEMA()
    assert node_id.startswith("Memo") and node_id not in FOREIGN_IDS
    assert schema.display_name and schema.display_name.startswith("MEMO ")
    assert cls.CATEGORY.split("/")[0] == "MEMO" and cls.DESCRIPTION
    assert all(isinstance(t, str) for t in cls.RETURN_TYPES)
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert all(cls.OUTPUT_TOOLTIPS) and all(name != t for name, t in zip(cls.RETURN_NAMES, cls.RETURN_TYPES))
    params = inspect.signature(cls.execute).parameters
    for t in cls.RETURN_TYPES:
        assert t in CORE_TYPES or t.startswith("MEMO_"), (node_id, t)
    seen = []
    for section, name, entry in _inputs(cls):
        seen.append(name)
        assert isinstance(entry, tuple) and len(entry) == 2, (node_id, name)
        kind, opts = entry
        assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert name in params, f"{node_id}.execute does not take {name}"
        if kind == "COMBO":
            values = opts["options"]
            # input-folder file lists may be empty on a fresh folder
            assert (values or (node_id, name) in FILE_COMBOS) and all(isinstance(v, str) for v in values)
            assert not opts.get("audio_upload"), "audio_upload breaks custom nodes in the frontend (web/js adds it)"
            if "default" in opts:
                assert opts["default"] in values
        else:
            assert kind in CORE_TYPES or kind.startswith("MEMO_"), (node_id, name, kind)
            if kind in ("INT", "FLOAT") and "default" in opts:
                assert opts["min"] <= opts["default"] <= opts["max"], (node_id, name)
        if section == "optional":
            assert params[name].default is not inspect.Parameter.empty, f"{node_id}.{name} optional needs a default"
    required = [n for s, n, _ in _inputs(cls) if s == "required"]
    for p in params.values():
        if p.default is inspect.Parameter.empty:
            assert p.name in required, f"{node_id}: parameter {p.name} is not a required input"
    assert len(seen) == len(set(seen))
    # ComfyUI passes validate_inputs and fingerprint_inputs the inputs by name
    for hook in ("validate_inputs", "fingerprint_inputs"):
        if hook in vars(cls):
            assert set(inspect.signature(getattr(cls, hook)).parameters) <= set(seen), (node_id, hook)


@pytest.mark.parametrize("node_id", sorted(M))
def test_nodes_keep_no_state_between_calls(node_id):
    """V3 runs every call on a fresh clone of the class: the pack's nodes are classmethods only, with no
    class attributes a call could write to."""
    cls = M[node_id]
    own = {k: v for k, v in vars(cls).items() if not (k.startswith("__") and k.endswith("__"))}
    assert all(isinstance(v, classmethod) for v in own.values()), \
        {k: type(v).__name__ for k, v in own.items() if not isinstance(v, classmethod)}
    assert "execute" in own and "define_schema" in own


def test_import_is_cheap_and_registers_nothing_heavy():
    """Imported as ComfyUI imports it (with the V3 API present, here the tests' double), the pack
    registers its 19 nodes through comfy_entrypoint, exports no V1 mapping (that would make ComfyUI
    skip the entry point), serves web/, and imports no torch, diffusers, transformers or PyAV."""
    code = ("import sys, asyncio, importlib.util as u; "
            f"sys.path.insert(0, r'{API_DOUBLE}'); "
            f"s = u.spec_from_file_location('memo_pack', r'{REPO / '__init__.py'}', "
            f"submodule_search_locations=[r'{REPO}']); m = u.module_from_spec(s); sys.modules['memo_pack'] = m; "
            "s.loader.exec_module(m); "
            "assert not hasattr(m, 'NODE_CLASS_MAPPINGS'), 'ComfyUI would ignore comfy_entrypoint'; "
            "ext = asyncio.run(m.comfy_entrypoint()); "
            "assert len(asyncio.run(ext.get_node_list())) == 19; "
            "import os; web = os.path.join(os.path.dirname(m.__file__), m.WEB_DIRECTORY); "
            "assert os.path.isfile(os.path.join(web, 'js', 'memo_nodes.js')), web; "
            "assert os.path.isfile(os.path.join(web, 'docs', 'MemoSampler.md')), web; "
            "heavy = [x for x in ('torch', 'diffusers', 'transformers', 'huggingface_hub', 'av') if x in sys.modules]; "
            "assert not heavy, heavy; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_without_the_v3_api_the_pack_logs_the_minimum_comfyui_and_registers_nothing():
    """An old ComfyUI (no comfy_api.v0_0_2) or a plain Python: no exception (ComfyUI's start-up goes
    on), one error line naming the minimum version, nothing registered."""
    code = ("import sys, importlib.util as u; "
            f"s = u.spec_from_file_location('memo_pack', r'{REPO / '__init__.py'}', "
            f"submodule_search_locations=[r'{REPO}']); m = u.module_from_spec(s); sys.modules['memo_pack'] = m; "
            "s.loader.exec_module(m); "
            "assert not hasattr(m, 'comfy_entrypoint') and not hasattr(m, 'NODE_CLASS_MAPPINGS'); "
            "assert m.WEB_DIRECTORY == './web'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert "MEMO: the MEMO nodes need ComfyUI 0.3.64 or newer" in out.stderr
    assert "comfy_api.v0_0_2" in out.stderr and "Update ComfyUI" in out.stderr


def test_example_inputs_are_copied_only_where_absent(tmp_path, monkeypatch):
    from memo_pack.nodes.examples import (
        EXAMPLE_DIALOGUE_PICTURE,
        EXAMPLE_DIALOGUE_VOICES,
        EXAMPLE_FILES,
        EXAMPLE_PORTRAIT,
        EXAMPLE_VOICE,
        EXAMPLES_DIR,
        install_example_inputs,
    )
    from memo_pack.nodes.ops_audio import decode_audio_file

    sizes = {p.name: p.stat().st_size for p in EXAMPLES_DIR.iterdir() if p.suffix != ".md"}
    assert set(sizes) == set(EXAMPLE_FILES) and sum(sizes[n] for n in (EXAMPLE_PORTRAIT, EXAMPLE_VOICE)) < 300_000
    assert sum(sizes[n] for n in (EXAMPLE_DIALOGUE_PICTURE, *EXAMPLE_DIALOGUE_VOICES)) < 300_000
    (tmp_path / EXAMPLE_VOICE).write_bytes(b"the user's own file")
    copied = install_example_inputs(tmp_path)
    assert [p.name for p in copied] == [n for n in EXAMPLE_FILES if n != EXAMPLE_VOICE]
    assert (tmp_path / EXAMPLE_VOICE).read_bytes() == b"the user's own file"           # never overwritten
    assert (tmp_path / EXAMPLE_PORTRAIT).read_bytes() == (EXAMPLES_DIR / EXAMPLE_PORTRAIT).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXAMPLE_FILES)          # no leftovers
    assert install_example_inputs(tmp_path) == []
    monkeypatch.setenv("MEMO_NO_EXAMPLE_INPUTS", "1")
    assert install_example_inputs(tmp_path / "other") == [] and not (tmp_path / "other").exists()
    monkeypatch.delenv("MEMO_NO_EXAMPLE_INPUTS")
    # without ComfyUI (no folder_paths) nothing is written anywhere
    assert install_example_inputs() == []
    voice = decode_audio_file(EXAMPLES_DIR / EXAMPLE_VOICE)
    assert voice["sample_rate"] == 16000 and 3.0 < voice["waveform"].shape[-1] / 16000 < 3.6
    assert float(voice["waveform"].abs().max()) > 0.1
    portrait = lib.load_image_tensor(EXAMPLES_DIR / EXAMPLE_PORTRAIT)
    assert tuple(portrait.shape) == (1, 256, 256, 3)
    assert tuple(lib.load_image_tensor(EXAMPLES_DIR / EXAMPLE_DIALOGUE_PICTURE).shape) == (1, 360, 640, 3)
    left, right = (decode_audio_file(EXAMPLES_DIR / name)["waveform"][0, 0] for name in EXAMPLE_DIALOGUE_VOICES)
    assert left.shape == right.shape and 3.0 < left.shape[-1] / 16000 < 3.6              # one shared timeline
    half = left.shape[-1] // 2                                                            # turns: left, then right
    assert left[:half].abs().max() > 0.1 and left[half + 8000:].abs().max() < 1e-3
    assert right[:half].abs().max() < 1e-3 and right[half:].abs().max() > 0.1


def test_dropdowns_list_what_is_on_disk(pack):
    assert combo_values("MemoModelLoader", "checkpoint") == ["memo"]
    wav = combo_values("MemoAudioModelLoader", "wav2vec")
    assert wav == ["memo/wav2vec2-base-960h", "wav2vec2-base-960h"]      # found + default for downloads
    assert lib.VOICE in combo_values("MemoLoadAudio", "audio")
    assert lib.PORTRAIT not in combo_values("MemoLoadAudio", "audio")


# --------------------------------------------------------------------------- front ends

def test_audio_encode_and_emotion(pack):
    assert pack.frames == 16 and pack.duration == pytest.approx(2.0)
    feats = pack.memo_audio.features
    assert tuple(feats.windows.shape[:3]) == (16, 5, 12) and feats.num_frames == 16
    assert pack.memo_audio.vocal_separation and pack.memo_audio.fps == FPS
    labels = pack.emotion.for_frames(16)
    assert labels.shape == (16,) and 0 <= int(labels.min()) and int(labels.max()) <= 8
    assert pack.emotion.num_samples == 32000 and pack.emotion.source == "detected"
    assert "0.00s" in pack.timeline and "2.00s" in pack.timeline
    # vocal separation changes the features (the tiny separator halves the spectrum)
    with torch.inference_mode():
        plain, _, _ = M["MemoAudioEncode"].execute(pack.wav2vec, pack.audio, FPS, False, FPC, None)
    assert not torch.allclose(plain.features.windows, feats.windows)
    assert plain.fingerprint != pack.memo_audio.fingerprint


@pytest.mark.slow
def test_long_audio_features_stay_on_disk_and_sample_identically(pack, monkeypatch):
    from memo_pack.nodes import ops_audio

    monkeypatch.setattr(ops_audio, "FEATURES_ON_DISK_SECONDS", 1.0)         # the voice is 2 s long
    with torch.inference_mode():
        long_audio, _, _ = M["MemoAudioEncode"].execute(pack.wav2vec, pack.audio, FPS, True, FPC, pack.separator)
    feats = long_audio.features
    assert feats.on_disk and not pack.memo_audio.features.on_disk
    assert feats.windows.path.parent == pack.root / "temp"
    assert long_audio.fingerprint == pack.memo_audio.fingerprint              # same audio, same state keys
    assert torch.equal(feats.windows[:], pack.memo_audio.features.windows)
    on_disk = SimpleNamespace(**{**vars(pack), "memo_audio": long_audio})
    assert torch.equal(sample(on_disk)[0], sample(pack)[0])


def test_emotion_override_schedule(pack):
    with torch.inference_mode():
        track, text = M["MemoDetectEmotion"].execute(pack.audio, None, "0s:happy, 1.5s:sad")
    labels = track.for_frames(16)
    assert labels[:12].tolist() == [3] * 12 and labels[12:].tolist() == [6] * 4     # 1.5 s at 8 fps
    assert "experimental" in text and "happy" in text and "sad" in text
    with torch.inference_mode():
        mixed, _ = M["MemoDetectEmotion"].execute(pack.audio, pack.emotion_model, "1s:angry")
    detected = pack.emotion.for_frames(16)
    assert mixed.for_frames(16)[:8].tolist() == detected[:8].tolist()
    assert mixed.for_frames(16)[8:].tolist() == [0] * 8 and mixed.source == "detected+override"
    for bad, word in (("1s:happy", "must start at 0s"), ("0s:elated", "unknown emotion"),
                      ("2s:sad, 1s:happy", "must increase"), ("0s:happy, 9s:sad", "after the end")):
        with pytest.raises(ValueError, match="override") as err:
            M["MemoDetectEmotion"].execute(pack.audio, None, bad)
        assert word in str(err.value)


def test_face_prep_crop_framing(pack):
    face = pack.face
    assert face.face_found and face.size == (SIZE, SIZE) and face.image_size == (320, 200)
    assert tuple(face.reference.shape) == (1, 3, SIZE, SIZE) and tuple(face.embedding.shape) == (1, 512)
    assert float(face.embedding.abs().sum()) > 0
    assert tuple(pack.reference.shape) == (1, SIZE, SIZE, 3)
    x0, y0, x1, y1 = face.framing.box
    assert x1 - x0 == y1 - y0 and 0 < x0 and x1 < 320                  # a square crop inside the wide picture
    with torch.inference_mode():
        resized, _, _ = M["MemoFacePrep"].execute(pack.face_model, pack.image, "resize", SIZE, SIZE, 2.0, 0.0, 0,
                                                    False)
    assert tuple(resized.framing.box) == (0, 0, 320, 200)
    assert torch.equal(resized.embedding, face.embedding)              # same face, same embedding


def test_load_audio_range_and_formats(pack, tmp_path):
    import av

    sr = 48000
    t = np.arange(3 * sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)
    path = Path(host.input_directory()) / "memo_test_stereo.flac"
    with av.open(str(path), "w") as c:
        s = c.add_stream("flac", rate=sr, layout="stereo")
        frame = av.AudioFrame.from_ndarray((stereo * 32767).astype(np.int16).T.reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate = sr
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    audio, = M["MemoLoadAudio"].execute(0.5, 1.25, "memo_test_stereo.flac")
    wave = audio["waveform"]
    assert audio["sample_rate"] == sr and tuple(wave.shape) == (1, 2, int(1.25 * sr))
    np.testing.assert_allclose(wave[0, :, :100].numpy(), stereo[:, sr // 2: sr // 2 + 100], atol=1e-4)
    full, = M["MemoLoadAudio"].execute(0.0, 0.0, "memo_test_stereo.flac")
    assert full["waveform"].shape[-1] == 3 * sr
    before = M["MemoLoadAudio"].fingerprint_inputs(0.0, 0.0, "memo_test_stereo.flac")
    path.touch()
    assert M["MemoLoadAudio"].fingerprint_inputs(0.0, 0.0, "memo_test_stereo.flac") == before     # same content
    assert M["MemoLoadAudio"].fingerprint_inputs(0.5, 0.0, "memo_test_stereo.flac") != before
    with open(path, "ab") as fh:
        fh.write(b"\0")
    assert M["MemoLoadAudio"].fingerprint_inputs(0.0, 0.0, "memo_test_stereo.flac") != before
    assert "not found" in M["MemoLoadAudio"].validate_inputs("nope.wav")
    assert "leaves the folder" in M["MemoLoadAudio"].validate_inputs("../x.wav")
    assert M["MemoLoadAudio"].validate_inputs("memo_test_stereo.flac") is True


# --------------------------------------------------------------------------- end to end

def test_end_to_end_to_mp4(pack):
    from memo_model.output.probe import probe_video, read_frames

    updates = []
    STANDIN.set_progress_hook(lambda v, t, p: updates.append((v, t, p)))
    try:
        frames, audio, fps, state = sample(pack)
    finally:
        STANDIN.set_progress_hook(None)
    assert tuple(frames.shape) == (16, SIZE, SIZE, 3) and frames.dtype == torch.float32
    assert 0 <= float(frames.min()) and float(frames.max()) <= 1 and float(frames.std()) > 0
    assert fps == float(FPS)
    assert audio["sample_rate"] == 16000 and tuple(audio["waveform"].shape) == (1, 1, 32000)
    assert torch.equal(audio["waveform"], pack.audio["waveform"][..., :32000])
    # one progress update per denoising step, each with the latest frame as preview
    assert [u[0] for u in updates] == list(range(1, 2 * STEPS + 1)) and {u[1] for u in updates} == {2 * STEPS}
    assert all(u[2] is not None and u[2].size == (SIZE, SIZE) for u in updates)
    assert state.frames_done == 16 and state.finished_audio and state.info["padded_tail"] == 0

    with torch.inference_mode():
        pasted, = M["MemoPasteBack"].execute(frames, pack.face, 0.1)
        result = M["MemoVideoCombine"].execute(pasted, fps, "MEMO/e2e", 18, audio)
    assert tuple(pasted.shape) == (16, 200, 320, 3)
    x0, _, x1, _ = pack.face.framing.box
    left = pack.image[:, :, : x0 - 1].expand(16, -1, -1, -1).numpy()
    np.testing.assert_allclose(pasted[:, :, : x0 - 1].numpy(), left,
                               atol=1e-6)                                   # outside the crop: the original
    assert not torch.allclose(pasted[:, 80:120, x0 + 20:x1 - 20], pack.image[:, 80:120, x0 + 20:x1 - 20])
    path = Path(result[0])
    assert path.parent == pack.output / "MEMO" and path.name == "e2e_00001_.mp4"
    assert result.ui == {"images": [{"filename": "e2e_00001_.mp4", "subfolder": "MEMO", "type": "output",
                                        "format": "video/mp4", "frame_rate": 8.0}], "animated": [True]}
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.video_codec) == (16, 320, 200, "h264")
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)
    first = next(read_frames(path)).astype(np.float32) / 255
    assert np.abs(first - pasted[0].numpy()).mean() < 0.05                 # the mp4 holds these frames
    again = M["MemoVideoCombine"].execute(pasted[:3], fps, "MEMO/e2e", 18, None)
    assert Path(again[0]).name == "e2e_00002_.mp4" and probe_video(again[0]).audio_seconds is None


@pytest.mark.slow
def test_chunked_render_through_state_file_equals_one_run(pack):
    carry = M["MemoryStateCarry"]
    full, full_audio, _, _ = sample(pack)
    first = carry.execute("load or start", "memo/chunks")
    assert first[0] is None and first[2] == 0
    parts, sounds = [], []
    for run in range(2):
        loaded = carry.execute("load or start", "memo/chunks")[0]
        frames, audio, _, state = sample(pack, max_frames=5, state=loaded)     # 5 -> one whole clip of 8
        assert len(frames) == 8 and state.frames_done == 8 * (run + 1) and state.info["chunks"] == run + 1
        saved = carry.execute("save", "memo/chunks", state)
        assert saved.ui["memo_state"][0]["frames_done"] == 8 * (run + 1)
        parts.append(frames)
        sounds.append(audio["waveform"])
    assert torch.equal(torch.cat(parts), full)                               # continues exactly where it stopped
    assert torch.equal(torch.cat(sounds, dim=-1), full_audio["waveform"])
    path = pack.output / "memo" / "chunks.safetensors"
    assert path.read_bytes()[8:9] == b"{"                                     # safetensors header, no pickle
    loaded = carry.execute("load", "memo/chunks")[0]
    with pytest.raises(ValueError, match="already rendered"):
        sample(pack, state=loaded)
    with pytest.raises(ValueError, match="steps: state has 2, now 3"):
        sample(pack, steps=3, state=loaded)
    # a state with frames still to do, continued with other weights / picture, is refused
    half = carry.execute("load", "memo/chunks")[0]
    half.info["frames_done"] = 8
    half.info["weights"] = "0" * 16
    with pytest.raises(ValueError, match="weights"):
        sample(pack, state=half)


def test_state_file_names_and_foreign_files_are_refused(pack):
    carry = M["MemoryStateCarry"]
    for bad in ("../escape", "/etc/passwd", "memo/../../x", ".hidden", "", "  ", "a\nb", "x" * 300):
        problem = carry.validate_inputs(bad)
        assert problem is not True and problem.startswith("file_name: "), bad
        assert str(pack.output) not in problem, problem                 # no server path in what clients see
    assert carry.validate_inputs("memo/ok") is True and carry.validate_inputs(None) is True     # None: linked
    assert carry.validate_inputs() is True       # a prompt without file_name: ComfyUI reports it missing, once
    out = pack.output / "memo"
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"x": torch.zeros(2)}, out / "pickled.safetensors")          # a pickle posing as safetensors
    with pytest.raises(ValueError, match="file_name"):
        carry.execute("load", "memo/pickled")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(out / "plain.safetensors"), metadata={"hello": "world"})
    with pytest.raises(ValueError, match="not a MEMO state"):
        carry.execute("load", "memo/plain")
    with pytest.raises(FileNotFoundError, match="file_name"):
        carry.execute("load", "memo/never_saved")
    with pytest.raises(ValueError, match="state: mode 'save' needs"):
        carry.execute("save", "memo/x", None)


def test_interrupt_is_honoured_within_one_step(pack):
    calls = []

    def hook(value, total, preview):
        calls.append(value)
        STANDIN.request_interrupt()

    STANDIN.set_progress_hook(hook)
    try:
        with pytest.raises(MemoInterrupted):
            sample(pack)
    finally:
        STANDIN.set_progress_hook(None)
        STANDIN.clear_interrupt()
    assert calls == [1]



def render(ns, **kw):
    args = dict(steps=STEPS, cfg=3.5, seed=7, frames_per_clip=FPC, past_frames=FPC, paste_back=True, feather=0.1,
                filename_prefix="MEMO/stream", crf=18, resume=True)
    args.update(kw)
    with torch.inference_mode():
        return M["MemoRenderVideo"].execute(ns.models, ns.vae, ns.face, ns.memo_audio, ns.emotion, **args)


@pytest.mark.slow
def test_streaming_render_equals_sampler_pasteback_combine(pack):
    """MemoRenderVideo (clip by clip, pasted and encoded as it goes) writes the same video as
    MemoSampler -> MemoPasteBack -> MemoVideoCombine, with the same audio track."""
    from memo_model.output.probe import probe_video, read_frames
    from memo_model.output.render import resume_dir_for

    frames, audio, fps, _ = sample(pack)
    with torch.inference_mode():
        pasted, = M["MemoPasteBack"].execute(frames, pack.face, 0.1)
        combined = Path(M["MemoVideoCombine"].execute(pasted, fps, "MEMO/framewise", 18, audio)[0])
        crop_only = Path(M["MemoVideoCombine"].execute(frames, fps, "MEMO/framewise", 18, audio)[0])
    updates = []
    STANDIN.set_progress_hook(lambda v, t, p: updates.append((v, t, p)))
    try:
        result = render(pack)
    finally:
        STANDIN.set_progress_hook(None)
    path = Path(result[0])
    assert path.parent == pack.output / "MEMO" and path.name == "stream_00001_.mp4"
    assert result.ui["images"][0] == {"filename": "stream_00001_.mp4", "subfolder": "MEMO", "type": "output",
                                         "format": "video/mp4", "frame_rate": 8.0}
    assert not resume_dir_for(path).exists()                                  # removed once complete
    assert [u[0] for u in updates] == list(range(1, 2 * STEPS + 1)) and {u[1] for u in updates} == {2 * STEPS}
    assert updates[0][2] is None and updates[-1][2].size == (320, 200)       # preview: the last pasted frame
    for streamed, framewise in ((path, combined), (Path(render(pack, paste_back=False)[0]), crop_only)):
        a, b = probe_video(streamed), probe_video(framewise)
        assert (a.num_frames, a.width, a.height) == (b.num_frames, b.width, b.height)
        assert a.audio_seconds == pytest.approx(b.audio_seconds, abs=1e-3)
        got, want = np.stack(list(read_frames(streamed))), np.stack(list(read_frames(framewise)))
        assert np.array_equal(got, want)


@pytest.mark.slow
def test_streaming_render_resumes_after_interrupt(pack):
    from memo_model.output.render import resume_dir_for

    reference = Path(render(pack, filename_prefix="MEMO/uninterrupted", resume=False)[0])

    def stop_in_second_clip(value, total, preview):
        if value == STEPS + 1:
            STANDIN.request_interrupt()

    STANDIN.set_progress_hook(stop_in_second_clip)
    try:
        with pytest.raises(MemoInterrupted):
            render(pack, filename_prefix="MEMO/resumed")
    finally:
        STANDIN.set_progress_hook(None)
        STANDIN.clear_interrupt()
    unfinished = pack.output / "MEMO" / "resumed_00001_.mp4"
    assert not unfinished.exists() and resume_dir_for(unfinished).is_dir()
    assert not list((pack.output / "MEMO").glob("resumed_*.tmp*"))

    other = Path(render(pack, filename_prefix="MEMO/resumed", seed=8)[0])   # another job: new file,
    assert other.name == "resumed_00002_.mp4" and resume_dir_for(unfinished).is_dir()  # checkpoint kept

    updates = []
    STANDIN.set_progress_hook(lambda v, t, p: updates.append(v))
    try:
        path = Path(render(pack, filename_prefix="MEMO/resumed")[0])
    finally:
        STANDIN.set_progress_hook(None)
    assert path == unfinished and not resume_dir_for(path).exists()
    # the bar starts at the clip resumed from; only the second clip was generated
    assert updates == [STEPS] + [STEPS + 1 + i for i in range(STEPS)]
    assert path.read_bytes() == reference.read_bytes()
    assert other.read_bytes() != reference.read_bytes()


# --------------------------------------------------------------------------- bad inputs

def test_no_face_is_an_error_naming_the_image_unless_allowed(pack):
    black = torch.zeros(1, 120, 160, 3)
    with pytest.raises(ValueError, match=r"^image: no face found"):
        M["MemoFacePrep"].execute(pack.face_model, black, "crop", SIZE, SIZE, 2.0, 0.0, 0, False)
    face, _, info = M["MemoFacePrep"].execute(pack.face_model, black, "crop", SIZE, SIZE, 2.0, 0.0, 0, True)
    assert not face.face_found and float(face.embedding.abs().sum()) == 0 and face.mode == "resize"
    assert "no face found" in info
    with pytest.raises(ValueError, match="^face_index"):
        M["MemoFacePrep"].execute(pack.face_model, pack.image, "crop", SIZE, SIZE, 2.0, 0.0, 3, False)


def test_no_face_advice_names_existing_widgets_and_the_threshold_finds_dim_faces(pack):
    # the tiny detector scores 0.5 + peak / 2 with peak in -1..1: a dim portrait (peak -0.53) scores 0.24
    from memo_model.apps.tiny_frontends import demo_portrait
    dim = torch.from_numpy((demo_portrait(160, 120) * (60 / 224)).round()[None] / 255).float()
    with pytest.raises(ValueError) as err:
        M["MemoFacePrep"].execute(pack.face_model, dim, "crop", SIZE, SIZE, 2.0, 0.0, 0, False)
    message = str(err.value)
    assert message.startswith("image: no face found") and "detection_threshold 0.50" in message
    widgets = set(M["MemoFacePrep"].INPUT_TYPES()["required"])
    assert {"detection_threshold", "allow_no_face"} <= widgets
    assert "lower detection_threshold" in message and "allow_no_face" in message
    face, _, info = M["MemoFacePrep"].execute(pack.face_model, dim, "crop", SIZE, SIZE, 2.0, 0.0, 0, False,
                                                detection_threshold=0.2)
    assert face.face_found and "score 0.236" in info and "detection_threshold 0.20" in info
    with pytest.raises(ValueError, match="^detection_threshold"):
        M["MemoFacePrep"].execute(pack.face_model, dim, "crop", SIZE, SIZE, 2.0, 0.0, 0, False,
                                    detection_threshold=1.5)


def test_silent_audio_is_an_error_naming_the_audio(pack):
    silent = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    with pytest.raises(ValueError, match=r"^audio: ComfyUI AUDIO input is silent"):
        M["MemoAudioEncode"].execute(pack.wav2vec, silent, FPS, False, FPC, None)
    with pytest.raises(ValueError, match=r"^audio: ComfyUI AUDIO input is silent"):
        M["MemoDetectEmotion"].execute(silent, pack.emotion_model, "")
    with pytest.raises(ValueError, match="^separator"):
        M["MemoAudioEncode"].execute(pack.wav2vec, pack.audio, FPS, True, FPC, None)
    with pytest.raises(ValueError, match="^audio: .*batch of 2"):
        M["MemoAudioEncode"].execute(pack.wav2vec, {"waveform": torch.rand(2, 1, 8000), "sample_rate": 16000},
                                      FPS, False, FPC, None)


def test_wrong_files_are_errors_naming_the_input(pack, tmp_path):
    bogus = Path(host.input_directory()) / "not_audio.wav"
    bogus.write_text("this is not a wav file")
    with pytest.raises(ValueError, match="^audio: audio file '.*not_audio.wav' could not be opened as audio"):
        M["MemoLoadAudio"].execute(0.0, 0.0, "not_audio.wav")
    with pytest.raises(ValueError, match="^audio: audio file '.*': no audio between 5s"):
        M["MemoLoadAudio"].execute(5.0, 0.0, lib.VOICE)
    # a corrupt weights file in a checkpoint folder
    import shutil
    models_root = Path(host.model_roots("memo")[0])
    broken = models_root / "broken"
    for sub in ("reference_net", "diffusion_net", "image_proj", "audio_proj"):
        shutil.copytree(pack.ckpt / sub, broken / sub)
    (broken / "diffusion_net" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 4096)
    with pytest.raises(ValueError, match="^checkpoint: "):
        M["MemoModelLoader"].execute("broken", "fp32", False)
    assert "broken" in combo_values("MemoModelLoader", "checkpoint")
    shutil.rmtree(broken)
    # the wrong kind of object on the VAE socket, and an emotion track of another audio
    with pytest.raises(ValueError, match="^vae: "):
        M["MemoSampler"].execute(pack.models, "not a vae", pack.face, pack.memo_audio, pack.emotion)
    other, _ = M["MemoDetectEmotion"].execute({"waveform": torch.rand(1, 1, 8000) - 0.5, "sample_rate": 16000},
                                               None, "neutral")
    with pytest.raises(ValueError, match="^emotion: made from another audio"):
        M["MemoSampler"].execute(pack.models, pack.vae, pack.face, pack.memo_audio, other)


def test_missing_models_error_lists_files_and_command(pack, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        M["MemoModelLoader"].execute("memo-fp16", "fp16", False)
    text = str(err.value)
    assert text.startswith("checkpoint: ")
    for net in ("reference_net", "diffusion_net", "image_proj", "audio_proj"):
        assert f"{net}/diffusion_pytorch_model.safetensors" in text
    # the folder as ComfyUI's users name it, never the server's own path
    assert "hf download memoavatar/memo" in text and "models/memo/memo-fp16" in text
    assert str(host.model_roots("memo")[0]) not in text
    assert "download_missing" in text


def test_download_missing_fetches_exactly_the_missing_files(pack, monkeypatch):
    import huggingface_hub

    asked = []
    source = pack.ckpt / "wav2vec2-base-960h"

    def fake_download(repo, filename, local_dir=None, **kw):
        asked.append((repo, filename))
        dest = Path(local_dir) / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((source / filename).read_bytes())
        return str(dest)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    target = Path(host.model_roots("memo")[0]) / "wav2vec2-base-960h"
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_bytes((source / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="(?s)^wav2vec: .*model.safetensors"):
        M["MemoAudioModelLoader"].execute("wav2vec2-base-960h", "fp32", False)
    assert asked == []
    updates = []
    STANDIN.set_progress_hook(lambda v, t, p: updates.append((v, t)))
    try:
        with torch.inference_mode():
            loaded, = M["MemoAudioModelLoader"].execute("wav2vec2-base-960h", "fp32", True)
    finally:
        STANDIN.set_progress_hook(None)
    assert sorted(asked) == [("facebook/wav2vec2-base-960h", "model.safetensors"),
                             ("facebook/wav2vec2-base-960h", "preprocessor_config.json")]
    assert updates[-1] == (2, 2) and loaded.folder == target


def test_video_combine_resamples_and_trims_audio(pack):
    from memo_model.output.probe import probe_video

    frames = torch.rand(10, 48, 64, 3)
    audio = {"waveform": torch.rand(1, 3, 11000 * 3) - 0.5, "sample_rate": 11000}     # 3 ch, non-AAC rate, 3 s
    result = M["MemoVideoCombine"].execute(frames, 5.0, "MEMO/resampled", 23, audio)
    info = probe_video(result[0])
    assert info.num_frames == 10 and info.audio_sample_rate == 48000 and info.audio_channels == 1
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)                   # cut to 10 frames / 5 fps
    with pytest.raises(ValueError, match="^filename_prefix"):
        M["MemoVideoCombine"].execute(frames, 5.0, "../outside", 23, None)
    with pytest.raises(ValueError, match="^images"):
        M["MemoVideoCombine"].execute(torch.rand(0, 8, 8, 3), 5.0, "MEMO/x", 23, None)


def test_host_fallback(pack, monkeypatch):
    assert not host.in_comfyui()
    assert str(host.torch_device()) == "cpu" and host.resolve_precision("auto") == torch.float32
    assert host.resolve_precision("bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        host.resolve_precision("fp8")
    assert host.model_roots("memo") == [pack.root / "models" / "memo"]
    assert host.output_directory() == pack.output
    managed = pack.models.managed
    assert managed.patcher is None and managed.load() == torch.device("cpu")
    assert managed.size_bytes() > 0 and "MEMO networks" in repr(managed)
    assert json.dumps(pack.emotion.segments)


# --------------------------------------------------------------------------- preflight (issue 11)

def _copy_damaged(src: Path, dst: Path, rel: str, keep_bytes):
    import shutil
    shutil.copytree(src, dst)
    target = dst / rel
    target.write_bytes(target.read_bytes()[:keep_bytes(target.stat().st_size)])
    return target


def test_loaders_name_truncated_model_files(pack):
    """A truncated wav2vec, SCRFD or MEMO file is reported by the loader, naming the input and the file."""
    import shutil
    root = Path(host.model_roots("memo")[0])
    w2v = _copy_damaged(pack.ckpt / "wav2vec2-base-960h", root / "w2v_cut", "model.safetensors", lambda n: n // 2)
    try:
        with pytest.raises(ValueError, match=r"^wav2vec: model file .*model\.safetensors is truncated") as err:
            M["MemoAudioModelLoader"].execute("w2v_cut", "fp32", False)
        assert "models/memo/w2v_cut/model.safetensors" in str(err.value) and "download_missing" in str(err.value)
        assert str(w2v) not in str(err.value) and type(err.value) is ValueError
    finally:
        shutil.rmtree(root / "w2v_cut")
    _copy_damaged(pack.ckpt / "misc", root / "face_cut" / "misc",
                          "face_analysis/models/scrfd_10g_bnkps.onnx", lambda n: n // 2)
    try:
        with pytest.raises(ValueError, match=r"^checkpoint: model file .*scrfd_10g_bnkps\.onnx is truncated") as err:
            M["MemoFaceModelLoader"].execute("face_cut", False)
        assert "models/memo/face_cut/misc/face_analysis/models/scrfd_10g_bnkps.onnx" in str(err.value)
    finally:
        shutil.rmtree(root / "face_cut")


def test_render_video_checks_output_and_picture_size_before_sampling(pack, monkeypatch):
    import dataclasses

    from memo_pack.memo_model.checks import preflight

    out = Path(host.output_directory()) / "MEMO"
    before = sorted(p.name for p in out.iterdir()) if out.exists() else []
    calls = []
    monkeypatch.setattr("memo_pack.memo_model.output.render.render_video", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(preflight, "_writable", lambda folder: "Read-only file system")
    with pytest.raises(ValueError, match=r"filename_prefix .*cannot write in folder .*Read-only file system"):
        render(pack, filename_prefix="MEMO/pre")
    monkeypatch.undo()
    monkeypatch.setattr("memo_pack.memo_model.output.render.render_video", lambda *a, **k: calls.append(1))
    huge = dataclasses.replace(pack.face.framing, image_size=(9000, 9000), image=None)
    face = dataclasses.replace(pack.face, framing=huge)
    with pytest.raises(ValueError, match=r"^paste_back: the picture 9000x9000 \(81\.0 MP\) is above the 35\.7 MP"):
        with torch.inference_mode():
            M["MemoRenderVideo"].execute(pack.models, pack.vae, face, pack.memo_audio, pack.emotion, steps=STEPS,
                                          frames_per_clip=FPC, past_frames=FPC, filename_prefix="MEMO/pre")
    assert calls == []
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else []) == before   # nothing left behind


def test_settings_far_from_trained_are_logged(pack, caplog, monkeypatch):
    def fail(*_a, **_k):
        raise RuntimeError("x")

    monkeypatch.setattr("memo_pack.memo_model.output.render.render_video", fail)
    with caplog.at_level("WARNING", logger="memo.nodes"), pytest.raises(RuntimeError):
        render(pack, filename_prefix="MEMO/warn")
    text = caplog.text
    assert f"MEMO: fps {FPS}: MEMO was trained at 30 fps" in text


def test_face_prep_warns_about_a_small_face_in_its_info(pack, caplog):
    from memo_model.apps.tiny_frontends import write_demo_portrait
    small = lib.load_image_tensor(write_demo_portrait(pack.root / "small48.png", width=48, height=48))
    with caplog.at_level("WARNING", logger="memo.nodes"):
        _, _, info = M["MemoFacePrep"].execute(pack.face_model, small, "crop", SIZE, SIZE, 2.0, 0.0, 0, False)
    assert "warning: the face is only 18 px tall in the picture (under 64 px)" in info
    assert "18 px tall" in caplog.text


def test_too_long_audio_advice_names_node_widgets(pack, monkeypatch):
    from memo_pack.memo_model.audio import frontend
    monkeypatch.setattr(frontend.load_voice, "__kwdefaults__", {"what": "audio", "max_seconds": 0.5})
    with pytest.raises(ValueError, match=r"^audio: .*long; the limit is 0\.5 s.*start and duration widgets") as err:
        M["MemoAudioEncode"].execute(pack.wav2vec, pack.audio, FPS, False, FPC, None)
    assert "max_seconds" not in str(err.value)


def test_load_audio_warns_how_much_of_a_truncated_file_was_lost(pack, caplog):
    import numpy as np

    from memo_testing.audio_fakes import write_encoded
    rate = 22050
    t = np.arange(rate * 3) / rate
    x = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    path = Path(host.input_directory()) / "cut_voice.mp3"
    write_encoded(path, x, rate)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="memo.nodes"):
        audio, = M["MemoLoadAudio"].execute(0.0, 0.0, "cut_voice.mp3")
    assert 1.0 < audio["waveform"].shape[-1] / audio["sample_rate"] < 2.0
    assert "cut_voice.mp3': only" in caplog.text and "s lost" in caplog.text
    path.unlink()


def test_video_combine_checks_the_output_folder_first(pack, monkeypatch):
    from memo_pack.memo_model.checks import preflight

    out = Path(host.output_directory()) / "MEMO"
    before = sorted(p.name for p in out.iterdir()) if out.exists() else []
    monkeypatch.setattr(preflight, "_writable", lambda folder: "Read-only file system")
    with pytest.raises(ValueError, match=r"^filename_prefix .*combine_ro.*cannot write in folder"):
        M["MemoVideoCombine"].execute(torch.rand(4, 32, 32, 3), 30.0, "MEMO/combine_ro", 18, None)
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else []) == before


# --------------------------------------------------------------------------- issue 19: limits, warnings, leftovers
# Bounded memory on every node route, refused before the work with the command line's limits and words;
# warnings as the node's text (what an API client and the canvas see); the feature files of long audio
# gone with the value that holds them; a cancel answered inside a clip boundary.

def _huge(face, size=(9000, 9000)):
    return dataclasses.replace(face, framing=dataclasses.replace(face.framing, image_size=size, image=None))


# --------------------------------------------------------------------------- memory

def test_paste_back_refuses_a_huge_picture_before_any_work(pack):
    frames = torch.rand(2, SIZE, SIZE, 3)
    with pytest.raises(ValueError) as err:
        M["MemoPasteBack"].execute(frames, _huge(pack.face), 0.1)
    assert type(err.value) is ValueError
    assert str(err.value) == ("face: the picture 9000x9000 (81.0 MP) is above the 35.7 MP limit for MEMO Paste Back "
                              "videos (H.264's largest level); downscale the picture to at most 36 MP or drop MEMO "
                              "Paste Back")


def test_paste_back_refuses_frames_that_do_not_fit_in_memory(pack, monkeypatch):
    w, h = pack.face.framing.image_size
    frames = torch.rand(4, SIZE, SIZE, 3)
    monkeypatch.setenv("MEMO_FREE_MEMORY", str(int(3 * w * h * 12 / 0.8)))      # room for 3 frames
    with pytest.raises(ValueError, match=rf"^images: 4 frames at {w}x{h} take .* GiB as an IMAGE \(float32\), more "
                                         r"than the .* GiB of memory available now \(about 3 frames fit\); paste back"):
        M["MemoPasteBack"].execute(frames, pack.face, 0.1)
    pasted, = M["MemoPasteBack"].execute(frames[:3], pack.face, 0.1)
    assert tuple(pasted.shape) == (3, h, w, 3)
    expected = pack.face.paste_back(0.1)(frames[:3])                                # filled in place, same values
    assert torch.equal(pasted, torch.as_tensor(expected))


def test_sampler_refuses_frames_that_do_not_fit_in_memory(pack, monkeypatch):
    called = []
    monkeypatch.setattr(nodes.ops_sampling, "memo_pipeline", lambda *a, **k: called.append(1))
    monkeypatch.setenv("MEMO_FREE_MEMORY", str(int(8 * SIZE * SIZE * 12 / 0.8)))  # room for 8 of the 16 frames
    with pytest.raises(ValueError, match=r"^max_frames: 16 frames at 64x64 take .*\(about 8 frames fit\); set "
                                         r"max_frames .* or use MEMO Render Video"):
        sample(pack)
    assert called == []                                                        # refused before any model work


def test_face_prep_converts_a_large_image_in_bounded_memory():
    import tracemalloc

    import numpy as np

    from memo_model.face.images import CONVERT_PIXELS, to_rgb_uint8

    image = torch.rand(1, 3000, 2000, 3)                  # 72 MB of float32, as ComfyUI's LoadImage gives it
    tracemalloc.start()
    try:
        rgb = to_rgb_uint8(image[:1], name="image", batch_index=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rgb.shape == (3000, 2000, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, np.rint(image[0].numpy().clip(0, 1) * 255).astype(np.uint8))
    # the uint8 result plus a band of float32 rows (and its finiteness mask), not several float copies
    assert peak < rgb.nbytes + 3 * 4 * 3 * CONVERT_PIXELS + (1 << 20), peak


# --------------------------------------------------------------------------- warnings a client sees

def test_sampler_and_render_warnings_are_the_nodes_text(pack, monkeypatch):
    from memo_model.checks.preflight import check_settings

    expected = ["warning: " + w for w in check_settings(name=lambda k: k, fps=FPS, frames_per_clip=FPC,
                                                           past_frames=4, initial_past_frames=16, cfg=3.5).warnings]
    assert any("fps 8: MEMO was trained at 30 fps" in w for w in expected) and \
        any("past_frames 4" in w for w in expected)
    out = sample(pack, past_frames=4)
    assert out.ui == {"text": expected}
    out = render(pack, past_frames=4, filename_prefix="MEMO/warned", resume=False)
    assert out.ui["text"] == expected and out.ui["animated"] == [True]


def test_face_prep_shows_a_small_face_warning_as_its_text(pack):
    from memo_model.apps.tiny_frontends import write_demo_portrait

    small = lib.load_image_tensor(write_demo_portrait(pack.root / "small48b.png", width=48, height=48))
    out = M["MemoFacePrep"].execute(pack.face_model, small, "crop", SIZE, SIZE, 2.0, 0.0, 0, False)
    assert out.ui == {"text": ["warning: the face is only 18 px tall in the picture (under 64 px); it is upscaled "
                               "for MEMO and the video will look blurred; use a larger picture of the face"]}
    assert M["MemoFacePrep"].execute(pack.face_model, pack.image, "crop", SIZE, SIZE, 2.0, 0.0, 0, False).ui is None


def test_render_video_refuses_a_linked_bad_prefix_before_any_model_work(pack, monkeypatch):
    called = []
    monkeypatch.setattr(nodes.ops_sampling, "memo_pipeline", lambda *a, **k: called.append(1))
    for prefix in ("x\ny", ".", "a" * 300, "../out"):
        with pytest.raises(ValueError, match="^filename_prefix: "):
            render(pack, filename_prefix=prefix)
    assert called == []


# --------------------------------------------------------------------------- nothing accumulates

def test_feature_files_go_with_the_value_that_holds_them(pack, monkeypatch):
    from memo_model.partial_files import new_file_mode

    ff = nodes.feature_files
    monkeypatch.setattr(nodes.ops_audio, "FEATURES_ON_DISK_SECONDS", 1.0)      # the 2 s voice goes to disk
    temp = Path(host.temp_directory())

    def files():
        return sorted(p.name for p in temp.iterdir() if ff.PATTERN.fullmatch(p.name)) if temp.exists() else []

    before = files()
    with torch.inference_mode():
        first, _, _ = M["MemoAudioEncode"].execute(pack.wav2vec, pack.audio, FPS, False, FPC, None)
        second, _, _ = M["MemoAudioEncode"].execute(pack.wav2vec, pack.audio, FPS, False, FPC, None)
    made = sorted(set(files()) - set(before))
    assert len(made) == 2 and all(os.fspath(temp / n) in ff.held() for n in made)   # one file per value
    assert (temp / made[0]).stat().st_mode & 0o777 == new_file_mode(temp)     # as any new file (0644)
    del first
    gc.collect()
    assert sorted(set(files()) - set(before)) == [n for n in made if os.fspath(temp / n) in ff.held()]
    assert len(set(files()) - set(before)) == 1                                # the dropped value's file is gone
    del second
    gc.collect()
    assert files() == before


def test_feature_files_no_value_holds_are_removed_beyond_the_cap(tmp_path):
    ff = nodes.feature_files
    names = [f"memo_features_{i:016x}_{i:08x}.safetensors" for i in range(4)]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x" * 1000)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / "other.bin").write_bytes(b"x" * 5000)                          # not ours: never touched
    held = os.fspath(tmp_path / names[0])
    ff._live.add(held)
    try:
        removed = ff.remove_unheld(tmp_path, 2500)
    finally:
        ff._live.discard(held)
    assert removed == [names[1], names[2]]                                     # oldest first, the held one spared
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names[0], names[3], "other.bin"])


# --------------------------------------------------------------------------- cancel

def test_a_cancel_after_a_clips_last_step_stops_before_the_next_clip(pack):
    """The standin's cancel, requested while clip 1's frames are handed on (its last step done), is
    answered at the next interruption point, before clip 2 takes a step."""
    updates = []

    def hook(value, total, preview):
        updates.append(value)

    def on_clip_cancel(real):
        def wrapped(index, frames):
            STANDIN.request_interrupt()
            return real(index, frames)
        return wrapped

    pipeline_module = load_pack().memo_model.generation.pipeline          # the library as the nodes import it
    real_generate = pipeline_module.MemoPipeline.generate

    def generate(self, *a, on_clip=None, **k):
        return real_generate(self, *a, on_clip=on_clip_cancel(on_clip or (lambda i, f: None)), **k)

    STANDIN.set_progress_hook(hook)
    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline_module.MemoPipeline, "generate", generate)
    try:
        with pytest.raises(MemoInterrupted):
            sample(pack)
    finally:
        mp.undo()
        STANDIN.set_progress_hook(None)
        STANDIN.clear_interrupt()
    assert updates == list(range(1, STEPS + 1))                                # no step of clip 2
