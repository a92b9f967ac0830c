"""A dialogue's inputs from files: picture + (face, voice) speakers -> what render_dialogue takes.

The dialogue twin of the single-face job's preparation, in the order that refuses bad input
before any expensive model work: the voices are decoded and checked first (missing files,
channels, silence, all of them at once), then the faces are detected and chosen (a face index
that does not exist names how many faces were found), then each face is framed, each padded
voice is encoded (wav2vec, after vocal separation when a separator is given) and its emotion
detected. Front-end models are loaded through the caller's ``load_*`` functions just before
their step and dropped after it (a caller that keeps models loaded returns its cached ones).

    inputs = prepare_dialogue("two.png", [Speaker(0, "a.wav"), Speaker(1, "b.wav")],
                              load_analyzer=..., load_encoder=..., load_emotion_detector=...)
    render_dialogue(pipeline, output="talk.mp4", settings=settings, **inputs.render_kwargs())
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..audio.decode import DEFAULT_MAX_SECONDS
from ..audio.voices import DialogueVoices, VoiceSource, load_voices
from ..face.selection import FaceChoice, FaceSelectionError, choose_faces, describe_faces
from ..output.dialogue import DialogueFace

__all__ = ["Speaker", "DialogueInputs", "prepare_dialogue"]


@dataclass(frozen=True)
class Speaker:
    """One face of the dialogue and its voice.

    ``face``: an index (0 = largest), a point or a box (:class:`memo_model.face.selection.FaceChoice`
    or its text, e.g. ``"1"``, ``"120,80"``); ``voice``: a file, AUDIO or
    :class:`memo_model.audio.voices.VoiceSource` (with ``channel``); ``emotion``: this face's
    emotion override ('' = detected); ``seed``: None follows the dialogue's seed rule; ``name``
    starts this speaker's messages (default 'face k'), e.g. the command-line option."""

    face: object
    voice: object
    emotion: str = ""
    seed: Optional[int] = None
    name: str = ""


@dataclass
class DialogueInputs:
    faces: list                         # DialogueFace per speaker, in the speakers' order
    num_frames: int
    audio: object                       # the soundtrack [channels, n] at 16 kHz
    sample_rate: int
    picture: object                     # RGB uint8 [H, W, 3]
    detected: list                      # every Face found, in index order (largest first)
    chosen: list                        # the detected index of each speaker's face
    voices: DialogueVoices
    warnings: list = field(default_factory=list)
    features: list = field(default_factory=list)        # AudioFeatures per speaker (padded voices)
    emotion_labels: list = field(default_factory=list)  # EmotionLabels per speaker, over the padded voice

    def render_kwargs(self) -> dict:
        """The keyword arguments of :func:`memo_model.output.dialogue.render_dialogue` it fills."""
        return dict(faces=self.faces, num_frames=self.num_frames, audio=self.audio,
                    sample_rate=self.sample_rate, picture=self.picture)


def prepare_dialogue(picture, speakers: Sequence[Speaker], *, load_analyzer: Optional[Callable] = None,
                     load_encoder: Callable, load_separator: Optional[Callable] = None,
                     load_emotion_detector: Optional[Callable] = None, mix=None, mix_name: str = "mix", size=512,
                     crop_scale: float = 2.0, offset_y: float = 0.0, feather: float = 0.1, fps: int = 30,
                     frames_per_clip: int = 16, det_threshold: Optional[float] = None,
                     max_seconds: Optional[float] = DEFAULT_MAX_SECONDS, features_dir=None,
                     log: Optional[Callable[[str], None]] = None, detected: Optional[Sequence] = None
                     ) -> DialogueInputs:
    """Voices, faces, framings, features and emotions of a dialogue (module docstring).

    ``load_analyzer()`` -> FaceAnalyzer, or ``detected``: the faces a caller already found in
    ``picture`` (index order, largest first, e.g. shown to the user to choose from) instead of
    detecting them again; ``load_encoder()`` -> AudioEncoder; ``load_separator()``
    (None: no vocal separation) and ``load_emotion_detector()`` (None: every speaker needs an
    emotion override) likewise. Faces are always crop-framed (``size``, ``crop_scale``,
    ``offset_y``, ``feather`` as :func:`memo_model.face.frame_portrait`). ``features_dir``: keep
    each face's wav2vec features on disk there (read back clip by clip). Warnings (listening
    faces, small faces) go to ``log`` and to the result; problems raise ValueError, every line
    starting with the speaker's name."""
    from ..audio.emotion import parse_override
    from ..audio.frontend import detect_emotion, encode_voice
    from ..checks.preflight import small_face_warning
    from ..face import NoFaceError, embedding_tensor, frame_portrait
    from ..face.images import to_rgb_uint8

    log = log or (lambda _m: None)
    speakers = list(speakers)
    if not speakers:
        raise ValueError("a dialogue needs at least one speaker (a face and its voice)")
    names = [s.name or f"face {k + 1}" for k, s in enumerate(speakers)]
    rgb = to_rgb_uint8(picture, name="picture")
    choices, problems = [], []
    for name, s in zip(names, speakers):
        try:
            choices.append(FaceChoice.parse(s.face))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise FaceSelectionError("\n".join(problems))

    voices = load_voices([VoiceSource.of(s.voice) for s in speakers], names=names, mix=mix, mix_name=mix_name,
                         max_seconds=max_seconds)
    for name, s in zip(names, speakers):
        try:
            parse_override(s.emotion, voices.duration)
        except ValueError as exc:
            problems.append(f"{name}: emotion: {exc}")
    if problems:
        raise ValueError("\n".join(problems))
    warnings = list(voices.warnings)

    if detected is None:
        if load_analyzer is None:
            raise ValueError("prepare_dialogue needs load_analyzer, or the faces already detected (detected=)")
        analyzer = load_analyzer()
        detected = analyzer.analyze(rgb, det_thresh=det_threshold)
        del analyzer
    detected = list(detected)
    if not detected:
        raise NoFaceError(f"no face found in the {rgb.shape[1]}x{rgb.shape[0]} picture"
                          + (f" at detection threshold {det_threshold:g}" if det_threshold is not None else ""))
    chosen = choose_faces(detected, choices, names)
    log(describe_faces(detected))
    framed = []
    for name, index in zip(names, chosen):
        face = detected[index]
        framed.append(frame_portrait(rgb, face, mode="crop", size=size, scale=crop_scale, offset_y=offset_y,
                                     feather=feather))
        small = small_face_warning(face.bbox, what=f"{name}: the face")
        if small:
            warnings.append(small)

    encoder = load_encoder()
    separator = load_separator() if load_separator is not None else None
    features = []
    for k, voice in enumerate(voices.voices):
        to_file = Path(features_dir) / f"face{k}.features.safetensors" if features_dir is not None else None
        features.append(encode_voice(voice, encoder, separator, fps=fps, frames_per_clip=frames_per_clip,
                                     to_file=to_file))
    del encoder, separator
    detector = load_emotion_detector() if load_emotion_detector is not None else None
    emotions, labels_each = [], []
    for name, s, voice, feats in zip(names, speakers, voices.voices, features):
        labels = detect_emotion(voice, detector, s.emotion, what=f"{name}: emotion")
        labels_each.append(labels)
        emotions.append(labels.for_frames(feats.num_frames))
    del detector

    frames = {f.audio_frames for f in features}
    if len(frames) != 1:
        raise RuntimeError(f"padded voices gave different frame counts {sorted(frames)}")
    faces = [DialogueFace(reference=ref, face_embedding=embedding_tensor(detected[index]),
                          audio_features=feats.windows, emotion=emo, framing=framing, seed=s.seed, name=name)
             for (ref, framing), index, feats, emo, s, name
             in zip(framed, chosen, features, emotions, speakers, names)]
    for w in warnings:
        log(f"warning: {w}")
    return DialogueInputs(faces=faces, num_frames=frames.pop(), audio=voices.mix, sample_rate=voices.sample_rate,
                          picture=rgb, detected=detected, chosen=chosen, voices=voices, warnings=warnings,
                          features=features, emotion_labels=labels_each)
