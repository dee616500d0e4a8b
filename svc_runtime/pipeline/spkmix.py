"""Time-varying speaker mix in so-vits-svc's `spkmix.py` format.

Per speaker (id or name), a list of segments ``[start, end, start_weight, end_weight]``
over normalised time 0..1: the first start is 0, the last end is 1, each start equals
the previous end, and the weight moves linearly from start to end weight. Weights of
all speakers are normalised to sum to 1 at every frame (a convex mix). Speakers left
out get weight 0.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svc_runtime.errors import UsageError


class SpeakerMixError(UsageError):
    """The speaker-mix file or mapping breaks the format."""


@dataclass(frozen=True)
class SpeakerMix:
    """Validated mix: speaker id -> segments [(start, end, w_start, w_end), ...] covering [0, 1]."""

    tracks: dict[int, tuple[tuple[float, float, float, float], ...]]

    def weights(self, n_frames: int, n_speakers: int, offset: int = 0, total: int | None = None) -> np.ndarray:
        """Weights [n_frames, n_speakers] of frames offset .. offset+n_frames of a file of `total` frames.

        A frame's normalised time is (index + 0.5) / total; rows sum to 1.
        """
        total = n_frames if total is None else total
        if total <= 0:
            raise SpeakerMixError("speaker mix over an empty file")
        t = (np.arange(offset, offset + n_frames, dtype=np.float64) + 0.5) / total
        return self.weights_at(t, n_speakers)

    def weights_at(self, times: np.ndarray, n_speakers: int) -> np.ndarray:
        """Weights [len(times), n_speakers] float32 at normalised times (clipped to [0, 1]); rows sum to 1."""
        t = np.clip(np.asarray(times, dtype=np.float64), 0.0, 1.0)
        out = np.zeros((t.shape[0], n_speakers), dtype=np.float64)
        for sid, segments in self.tracks.items():
            if not 0 <= sid < n_speakers:
                raise SpeakerMixError(f"speaker id {sid} in the mix, but the model has {n_speakers} speakers")
            for start, end, w0, w1 in segments:
                inside = (t >= start) & ((t < end) | (end >= 1.0))
                frac = (t[inside] - start) / (end - start)
                out[inside, sid] = w0 + (w1 - w0) * frac
        sums = out.sum(axis=1, keepdims=True)
        if np.any(sums <= 0):
            first = int(np.flatnonzero(sums[:, 0] <= 0)[0])
            raise SpeakerMixError(
                f"speaker mix has all weights 0 at normalised time {t[first]:.3f}; "
                "at least one speaker needs a positive weight everywhere"
            )
        return (out / sums).astype(np.float32)


def parse_speaker_mix(mapping: dict, speakers: dict[str, int]) -> SpeakerMix:
    """Validate a {speaker id or name: [[start, end, w_start, w_end], ...]} mapping."""
    if not isinstance(mapping, dict) or not mapping:
        raise SpeakerMixError("speaker mix must be a non-empty mapping of speaker -> segments")
    tracks: dict[int, tuple[tuple[float, float, float, float], ...]] = {}
    for key, segments in mapping.items():
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            if key not in speakers:
                raise SpeakerMixError(f"speaker {key!r} in the mix is not in the model ({sorted(speakers)})")
            sid = speakers[key]
        else:
            sid = int(key)
        where = f"speaker {key!r}"
        if not isinstance(segments, (list, tuple)) or not segments:
            raise SpeakerMixError(f"{where}: needs a list of [start, end, start_weight, end_weight] segments")
        parsed = []
        for i, seg in enumerate(segments):
            if not isinstance(seg, (list, tuple)) or len(seg) != 4:
                raise SpeakerMixError(f"{where}, segment {i}: expected 4 numbers, got {seg!r}")
            try:
                start, end, w0, w1 = (float(v) for v in seg)
            except (TypeError, ValueError):
                raise SpeakerMixError(f"{where}, segment {i}: values must be numbers, got {seg!r}") from None
            if not 0.0 <= start < end <= 1.0:
                raise SpeakerMixError(f"{where}, segment {i}: need 0 <= start < end <= 1, got {start}, {end}")
            if w0 < 0 or w1 < 0:
                raise SpeakerMixError(f"{where}, segment {i}: weights must be >= 0, got {w0}, {w1}")
            expected_start = parsed[-1][1] if parsed else 0.0
            if abs(start - expected_start) > 1e-9:
                raise SpeakerMixError(
                    f"{where}, segment {i}: starts at {start} but must start at {expected_start} "
                    "(the first at 0, each at the previous end)"
                )
            parsed.append((start, end, w0, w1))
        if abs(parsed[-1][1] - 1.0) > 1e-9:
            raise SpeakerMixError(f"{where}: the last segment must end at 1, ends at {parsed[-1][1]}")
        if sid in tracks:
            raise SpeakerMixError(f"{where}: speaker id {sid} appears twice")
        tracks[sid] = tuple(parsed)
    return SpeakerMix(tracks)


def load_speaker_mix(path: str | Path, speakers: dict[str, int]) -> SpeakerMix:
    """Read a mix file: JSON, a Python literal dict, or a `spkmix.py` with `spk_mix_map = {...}`.

    Python files are parsed as literals only (never executed).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpeakerMixError(f"{p}: cannot read speaker mix file ({e.strerror})") from None
    try:
        return parse_speaker_mix(_int_keys(json.loads(text)), speakers)
    except json.JSONDecodeError:
        pass
    try:
        tree = ast.parse(text, filename=str(p))
    except SyntaxError as e:
        raise SpeakerMixError(f"{p}: neither JSON nor a Python literal ({e.msg}, line {e.lineno})") from None
    value_node = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "spk_mix_map" for t in node.targets):
            value_node = node.value
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Dict) and value_node is None:
            value_node = node.value
    if value_node is None:
        raise SpeakerMixError(f"{p}: no `spk_mix_map = {{...}}` assignment or dict literal found")
    try:
        mapping = ast.literal_eval(value_node)
    except ValueError as e:
        raise SpeakerMixError(f"{p}: spk_mix_map must be a plain literal ({e})") from None
    try:
        return parse_speaker_mix(mapping, speakers)
    except SpeakerMixError as e:
        raise SpeakerMixError(f"{p}: {e}") from None


def _int_keys(mapping):
    return {(int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k): v for k, v in mapping.items()} if isinstance(mapping, dict) else mapping
