"""A deterministic noise field: the generator's random terms as a pure function of (seed, stream, frame).

Whole-file, chunked and streamed conversion draw the same numbers for the same frame,
so their outputs agree wherever their inputs do. Noise is drawn in blocks of
`block_frames` frames, each from its own seeded numpy Generator; only the last
`cached_blocks` blocks of each kind are kept, so a field's memory stays bounded however
long the audio it covers (neighbouring chunk windows overlap by their context, which
the recent blocks serve).
"""

from __future__ import annotations

import numpy as np


class NoiseField:
    """Standard-normal prior [inter, T] and sine [T*hop, H] noise, uniform rand_ini [H], per frame range."""

    def __init__(self, seed: int, inter_channels: int, hop: int, harmonics: int, stream: int = 0,
                 block_frames: int = 128, cached_blocks: int = 4):
        self.seed = int(seed)
        self.stream = int(stream)
        self.inter_channels = inter_channels
        self.hop = hop
        self.harmonics = harmonics
        self.block_frames = block_frames
        self.cached_blocks = cached_blocks
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def _rng(self, kind: int, block: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.stream, kind, block])

    def _block(self, kind: str, block: int) -> np.ndarray:
        key = (kind, block)
        cached = self._cache.pop(key, None)
        if cached is not None:
            self._cache[key] = cached  # most recently used last
            return cached
        if kind == "prior":
            value = self._rng(1, block).standard_normal((self.inter_channels, self.block_frames), dtype=np.float32)
        else:
            value = self._rng(2, block).standard_normal((self.block_frames * self.hop, self.harmonics), dtype=np.float32)
        same_kind = [k for k in self._cache if k[0] == kind]
        for old in same_kind[: max(0, len(same_kind) - self.cached_blocks + 1)]:
            del self._cache[old]
        if self.cached_blocks > 0:
            self._cache[key] = value
        return value

    def release(self) -> None:
        """Drop the cached blocks (they are redrawn, identically, if asked for again)."""
        self._cache.clear()

    def rand_ini(self) -> np.ndarray:
        """Initial NSF phases [H] in cycles; element 0 is 0 (the reference forces it)."""
        r = self._rng(0, 0).random(self.harmonics, dtype=np.float32)
        r[0] = 0.0
        return r

    def prior(self, start: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
        """Prior noise of frames [start, end): [inter_channels, end - start] float32."""
        n = end - start
        out = np.empty((self.inter_channels, n), np.float32) if out is None else out
        self._fill(out, start, end, "prior", axis=1, unit=1)
        return out

    def sine(self, start: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sine-source noise of frames [start, end): [(end - start) * hop, H] float32."""
        n = (end - start) * self.hop
        out = np.empty((n, self.harmonics), np.float32) if out is None else out
        self._fill(out, start, end, "sine", axis=0, unit=self.hop)
        return out

    def _fill(self, out: np.ndarray, start: int, end: int, kind: str, axis: int, unit: int) -> None:
        if start < 0 or end < start:
            raise ValueError(f"bad frame range [{start}, {end})")
        pos = start
        while pos < end:
            block, within = divmod(pos, self.block_frames)
            take = min(end - pos, self.block_frames - within)
            src = self._block(kind, block)
            dst_sl = slice((pos - start) * unit, (pos - start + take) * unit)
            src_sl = slice(within * unit, (within + take) * unit)
            if axis == 1:
                out[:, dst_sl] = src[:, src_sl]
            else:
                out[dst_sl] = src[src_sl]
            pos += take
