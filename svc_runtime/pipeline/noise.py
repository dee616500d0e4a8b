"""The generator's random terms as a pure function of (seed, stream, position): a counter-based generator.

Whole-file, chunked and streamed conversion, and hosts in other languages, draw the same numbers for
the same frame, because every value is computed from its own position, never from a running state.
The definition (docs/bundle.md, "Noise") is small enough to implement anywhere in a few lines:

    splitmix64(x) = mix of x + 0x9E3779B97F4A7C15 (Steele, Lea, Flood 2014; all arithmetic mod 2^64)
    key(seed, stream, kind) = splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ kind)
    gauss(key, j): pair p = j >> 1, u1 = (splitmix64(key + 2p) >> 11 + 1) 2^-53, u2 = (splitmix64(key + 2p + 1) >> 11) 2^-53,
                   r = sqrt(-2 ln u1); element 2p is r cos(2 pi u2), element 2p + 1 is r sin(2 pi u2)  (double -> float32)
    table[j] = gauss(key(0, 0, KIND_TABLE), j) for j < 2^20: one shared table of standard normals (4 MiB)
    normal(key, i) = table[(splitmix64(key + (i >> 12)) >> 44) + (i & 4095)) mod 2^20]

so every run of 4096 consecutive elements is a slice of the table at a pseudo-random place: a gather per
element instead of a hash and four transcendental functions (the sine noise alone is hop * 9 values per
frame, ~400 k per second of audio at 44.1 kHz).

Streams: one per voiced slice of a file (its index among the converted slices), 0 for a live stream.
Kinds: `KIND_PHASE` initial NSF phases, `KIND_PRIOR` prior noise (element t * C + c for frame t,
channel c), `KIND_SINE` sine-source noise (element s * H + h for sample s = t * hop + j, harmonic h).
"""

from __future__ import annotations

import functools

import numpy as np

from svc_runtime.signal.nsf_phase import PHASE_FIXED_POINT_BITS, phase_to_limbs

KIND_PHASE = 0
KIND_PRIOR = 1
KIND_SINE = 2
KIND_TABLE = 3

TABLE_BITS = 20
"""The shared table holds 2^20 standard normals."""
RUN_BITS = 12
"""Elements come from the table in runs of 2^12 consecutive values."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's output function of uint64 values (wrapping arithmetic): [...] uint64 -> [...] uint64."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _mix_int(x: int) -> int:
    """splitmix64 of one Python int (mod 2^64)."""
    return int(splitmix64(np.array([x & _MASK64], dtype=np.uint64))[0])


def stream_key(seed: int, stream: int, kind: int) -> int:
    """The 64-bit key of one kind of noise of one stream."""
    return _mix_int(_mix_int(_mix_int(seed) ^ (stream & _MASK64)) ^ kind)


def gaussians(key: int, start: int, count: int) -> np.ndarray:
    """Box-Muller standard normals [start, start + count) of the sequence of `key`: [count] float32 (the table's source)."""
    if count <= 0:
        return np.zeros(0, np.float32)
    first, last = start >> 1, (start + count + 1) >> 1
    index = np.arange(2 * first, 2 * last, dtype=np.int64).astype(np.uint64) + np.uint64(key)  # wraps mod 2^64
    bits = splitmix64(index).reshape(-1, 2) >> np.uint64(11)
    u1 = (bits[:, 0] + np.uint64(1)).astype(np.float64) * 2.0**-53
    angle = bits[:, 1].astype(np.float64) * (2.0**-53 * 2.0 * np.pi)
    radius = np.sqrt(-2.0 * np.log(u1))
    pairs = np.empty((last - first, 2), np.float64)
    np.multiply(radius, np.cos(angle), out=pairs[:, 0])
    np.multiply(radius, np.sin(angle), out=pairs[:, 1])
    offset = start - 2 * first
    return pairs.reshape(-1)[offset : offset + count].astype(np.float32)


@functools.cache
def normal_table() -> np.ndarray:
    """The shared table of 2^20 standard normals (built once per process, ~50 ms)."""
    table = gaussians(stream_key(0, 0, KIND_TABLE), 0, 1 << TABLE_BITS)
    table.setflags(write=False)
    return table


def normals(key: int, start: int, count: int) -> np.ndarray:
    """Standard normal elements [start, start + count) of the sequence of `key`: [count] float32."""
    if count <= 0:
        return np.zeros(0, np.float32)
    run = 1 << RUN_BITS
    first_run, last_run = start >> RUN_BITS, (start + count - 1) >> RUN_BITS
    runs = np.arange(first_run, last_run + 1, dtype=np.int64).astype(np.uint64) + np.uint64(key)
    places = (splitmix64(runs) >> np.uint64(64 - TABLE_BITS)).astype(np.int64)
    index = places[:, None] + np.arange(run, dtype=np.int64)[None, :]
    index &= (1 << TABLE_BITS) - 1
    offset = start - (first_run << RUN_BITS)
    return normal_table()[index.reshape(-1)[offset : offset + count]]


class NoiseStream:
    """The noise of one stream: prior [C, frames], sine [frames * hop, H] and the initial NSF phase [H]."""

    def __init__(self, seed: int, stream: int, inter_channels: int, hop: int, harmonics: int) -> None:
        self.seed, self.stream = int(seed), int(stream)
        self.inter_channels, self.hop, self.harmonics = inter_channels, hop, harmonics
        self._prior_key = stream_key(self.seed, self.stream, KIND_PRIOR)
        self._sine_key = stream_key(self.seed, self.stream, KIND_SINE)

    def prior(self, start: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
        """Prior noise of frames [start, end): [inter_channels, end - start] float32."""
        c = self.inter_channels
        values = normals(self._prior_key, start * c, (end - start) * c).reshape(end - start, c).T
        if out is None:
            return np.ascontiguousarray(values)
        out[...] = values
        return out

    def sine(self, start: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sine-source noise of frames [start, end): [(end - start) * hop, harmonics] float32."""
        h, n = self.harmonics, (end - start) * self.hop
        values = normals(self._sine_key, start * self.hop * h, n * h).reshape(n, h)
        if out is None:
            return values
        out[...] = values
        return out

    def initial_phase(self) -> np.ndarray:
        """NSF phases before the stream's first frame: int32 limbs [3, H] of cycles * 2^40
        (`svc_runtime.signal.nsf_phase.PHASE_LIMBS`); harmonic 0 is 0."""
        key = stream_key(self.seed, self.stream, KIND_PHASE)
        index = np.arange(self.harmonics, dtype=np.uint64) + np.uint64(key)
        phase = (splitmix64(index) >> np.uint64(64 - PHASE_FIXED_POINT_BITS)).astype(np.int64)
        phase[0] = 0
        return phase_to_limbs(phase)
