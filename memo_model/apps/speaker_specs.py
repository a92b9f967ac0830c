"""A dialogue's speakers as users write them: ``--face`` options and a jobs-file line's ``faces``.

One speaker is ``FACE=VOICE[:CHANNEL][;emotion=TEXT][;seed=N]``:

* ``FACE``: ``1`` (an index, 0 = the largest face), ``x,y`` (a point inside the face) or
  ``x1,y1,x2,y2`` (a box around it), in picture pixels;
* ``VOICE``: the voice file; a trailing ``:N`` (digits only) takes channel N (0-based) of a
  multichannel file, e.g. ``1=talk.wav:1``;
* ``;emotion=TEXT``: this face's emotion override (as ``--emotion``), ``;seed=N``: its own seed.

    --face 0=left.wav --face 1=right.wav
    --face 0=talk.wav:0 --face 1=talk.wav:1 --mix talk.wav
    --face "120,80=a.wav;emotion=happy" --face "300,60,420,200=b.wav;seed=7"

A jobs-file line gives ``faces`` as a list of such texts or of objects
``{"face": 1, "voice": "b.wav", "channel": 1, "emotion": "sad", "seed": 7}`` (JSON lines), or
as one CSV cell with the texts separated by ``|``. Relative voice paths are relative to ``base``
(the jobs file's folder; the current folder on the command line).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..face.selection import FaceChoice
from ..job import Speaker

__all__ = ["parse_speaker", "speakers_from_field", "SYNTAX"]

SYNTAX = "FACE=VOICE[:CHANNEL][;emotion=TEXT][;seed=N]"
_CHANNEL = re.compile(r"(.+):(\d+)")


def _face(text) -> FaceChoice:
    return FaceChoice.parse(text.strip() if isinstance(text, str) else text)


def parse_speaker(text: str, base: Optional[Path] = None, name: Optional[str] = None) -> Speaker:
    """One speaker from its text (module docstring); ValueError saying what is wrong."""
    head, sep, tail = str(text).partition("=")
    parts = tail.split(";")
    voice = parts[0].strip()
    if not sep or not head.strip() or not voice:
        raise ValueError(f"{text!r}: write {SYNTAX}, e.g. 0=left.wav or 1=talk.wav:1")
    channel = None
    found = _CHANNEL.fullmatch(voice)
    if found:
        voice, channel = found.group(1), int(found.group(2))
    extras = {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in ("emotion", "seed") or key in extras:
            raise ValueError(f"{text!r}: after the voice come ;emotion=TEXT and ;seed=N (each once), not {part!r}")
        extras[key] = value.strip()
    seed = None
    if "seed" in extras:
        if not extras["seed"].isdigit():
            raise ValueError(f"{text!r}: seed {extras['seed']!r} must be a whole number >= 0")
        seed = int(extras["seed"])
    try:
        face = _face(head)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    path = Path(voice).expanduser()
    return Speaker(face=face, voice=path if base is None or path.is_absolute() else Path(base) / path,
                   channel=channel, emotion=extras.get("emotion", ""), seed=seed, name=name or str(text))


def _from_object(item: dict, base: Path, label: str) -> Speaker:
    known = {"face", "voice", "audio", "channel", "emotion", "seed"}
    unknown = sorted(set(item) - known)
    if unknown or "face" not in item or ("voice" in item) == ("audio" in item):
        raise ValueError(f"{label}: an object with face and voice (and optionally channel, emotion, seed), "
                         f"got {sorted(item)}")
    voice = str(item.get("voice", item.get("audio")) or "").strip()
    if not voice:
        raise ValueError(f"{label}: voice is empty")
    for key in ("channel", "seed"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{label}: {key} {value!r} must be a whole number >= 0")
    emotion = item.get("emotion") or ""
    if not isinstance(emotion, str):
        raise ValueError(f"{label}: emotion {emotion!r} must be text")
    try:
        face = _face(item["face"])
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
    path = Path(voice).expanduser()
    return Speaker(face=face, voice=path if path.is_absolute() else Path(base) / path, channel=item.get("channel"),
                   emotion=emotion, seed=item.get("seed"), name=label)


def speakers_from_field(value, base: Path, field: str = "faces") -> tuple:
    """A jobs-file line's ``faces`` value -> Speakers named ``faces[k]`` (module docstring)."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split("|") if v.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError(f"{field}: a list of {SYNTAX} texts or objects, or (CSV) the texts separated by |")
    if not items:
        raise ValueError(f"{field}: empty; give one entry per animated face")
    speakers = []
    for k, item in enumerate(items):
        label = f"{field}[{k}]"
        if isinstance(item, dict):
            speakers.append(_from_object(item, base, label))
        elif isinstance(item, str):
            try:
                speakers.append(parse_speaker(item, base, name=f"{label} {item}"))
            except ValueError as exc:
                raise ValueError(f"{label}: {exc}") from None
        else:
            raise ValueError(f"{label}: {item!r} is neither a {SYNTAX} text nor an object")
    return tuple(speakers)
