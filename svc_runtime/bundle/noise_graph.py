"""A tiny ONNX graph that unpacks one host upload into a conversion graph's per-window inputs, on the device.

The conversion graph's per-window inputs are the audio (`wav16k`, plus `f0_in` / `units` / `audio_in`
where the graph has them), the noise (`noise_prior` [B, C, T], `sine_noise` [B, T*hop, H]) and
`state_frame`. The noise is most of the bytes (sine noise: hop * H values per frame) and changes every
window, since it is a function of the absolute frame (`svc_runtime.pipeline.noise`). But every run of
4096 consecutive noise elements is a slice of one shared table at a pseudo-random place, so the device
can draw it itself: the table goes to the device once, and per window the host sends only the places
of the runs the window touches (a few per second of audio) and the window's offset into the first run.

This graph takes `packed` [B, L] float32 (each row: the window's float inputs flattened, then the
places, offsets and state_frame, all integers below 2^24 and so exact in float32) and `table`
[2^20 + 4096] float32 (the shared table followed by its first 4096 values again, so a run never wraps),
and writes the conversion graph's inputs, bit-equal to `window_feeds` on the host:
element i of a kind's sequence = table[place(i >> 12) + (i & 4095)].

ONNX Runtime has no model builder and `svc_runtime` does not depend on `onnx`, so the model's protobuf
is written directly (`_Proto`: the handful of ModelProto fields used here, onnx.proto field numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svc_runtime.pipeline.noise import RUN_BITS, TABLE_BITS, normal_table, splitmix64

OPSET = 17
RUN = 1 << RUN_BITS
_FLOAT, _INT64 = 1, 7  # onnx TensorProto.DataType
_ATTR_INT, _ATTR_INTS = 2, 7  # onnx AttributeProto.AttributeType


def device_table() -> np.ndarray:
    """The shared normal table with its first run appended: [2^20 + 4096] float32."""
    table = normal_table()
    return np.concatenate([table, table[:RUN]])


def runs_spanned(count: int) -> int:
    """Runs a stretch of `count` consecutive elements can touch, whatever its offset into the first run."""
    return (RUN - 1 + count - 1) // RUN + 1


def run_places(key: int, first: int, runs: int) -> tuple[np.ndarray, int]:
    """Table places of `runs` runs from the one holding element `first` of `key`'s sequence, and the offset
    of `first` in its run: ([runs] int64 in [0, 2^20), offset in [0, 4096)). Same arithmetic as `normals`."""
    first_run = first >> RUN_BITS
    index = np.arange(first_run, first_run + runs, dtype=np.int64).astype(np.uint64) + np.uint64(key)
    places = (splitmix64(index) >> np.uint64(64 - TABLE_BITS)).astype(np.int64)
    return places, first - (first_run << RUN_BITS)


# --------------------------------------------------------------------------- protobuf writer


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Proto:
    """Protobuf fields in order: `v` varint, `s` string / bytes / nested message."""

    def __init__(self) -> None:
        self.data = bytearray()

    def v(self, field: int, value: int) -> "_Proto":
        self.data += _varint(field << 3) + _varint(value)
        return self

    def s(self, field: int, value: "bytes | str | _Proto") -> "_Proto":
        raw = value.data if isinstance(value, _Proto) else value.encode() if isinstance(value, str) else value
        self.data += _varint(field << 3 | 2) + _varint(len(raw)) + bytes(raw)
        return self


def _tensor(name: str, value: np.ndarray) -> _Proto:
    t = _Proto()
    for d in value.shape:
        t.v(1, d)
    t.v(2, _INT64 if value.dtype == np.int64 else _FLOAT)
    return t.s(8, name).s(9, np.ascontiguousarray(value).tobytes())


def _value_info(name: str, elem_type: int, shape: tuple[int, ...]) -> _Proto:
    dims = _Proto()
    for d in shape:
        dims.s(1, _Proto().v(1, d))
    tensor_type = _Proto().v(1, elem_type).s(2, dims)
    return _Proto().s(1, name).s(2, _Proto().s(1, tensor_type))


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[_Proto] = []
        self.inits: list[_Proto] = []
        self.count = 0

    def const(self, value) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(_tensor(name, np.asarray(value, np.int64)))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        self.count += 1
        out = out or f"t{self.count}"
        node = _Proto()
        for name in inputs:
            node.s(1, name)
        node.s(2, out).s(3, f"n{self.count}").s(4, op_type)
        for key, value in attrs.items():
            attr = _Proto().s(1, key)
            if isinstance(value, (list, tuple)):
                for item in value:
                    attr.v(8, item)
                attr.v(20, _ATTR_INTS)
            else:
                attr.v(3, value).v(20, _ATTR_INT)
            node.s(5, attr)
        self.nodes.append(node)
        return out

    def slice_cols(self, data: str, start: int, stop: int) -> str:
        return self.op("Slice", [data, self.const([start]), self.const([stop]), self.const([1])])


# --------------------------------------------------------------------------- the feeder


@dataclass(frozen=True)
class FeederLayout:
    """Where each value sits in a `packed` row of one window batch shape.

    floats: (input name, shape without batch) of the window's float inputs, in row order;
    prior / sine: (elements per window, runs) of each noise kind; batch: B.
    """

    batch: int
    floats: tuple[tuple[str, tuple[int, ...]], ...]
    frames: int
    channels: int
    samples: int
    harmonics: int

    @property
    def prior_count(self) -> int:
        return self.channels * self.frames

    @property
    def sine_count(self) -> int:
        return self.samples * self.harmonics

    @property
    def float_width(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.floats)

    @property
    def control_width(self) -> int:
        return runs_spanned(self.prior_count) + 1 + runs_spanned(self.sine_count) + 1 + 1

    @property
    def width(self) -> int:
        return self.float_width + self.control_width

    def fill(self, row: np.ndarray, values: dict[str, np.ndarray], prior_key: int, sine_key: int, start: int,
             state_frame: int) -> None:
        """Write one window's row: its float inputs, then the noise places of frames [start, start + frames)."""
        at = 0
        for name, shape in self.floats:
            n = int(np.prod(shape))
            row[at : at + n] = values[name].reshape(-1)
            at += n
        for key, first, count in ((prior_key, start * self.channels, self.prior_count),
                                  (sine_key, start * (self.samples // self.frames) * self.harmonics, self.sine_count)):
            runs = runs_spanned(count)
            places, offset = run_places(key, first, runs)
            row[at : at + runs] = places
            row[at + runs] = offset
            at += runs + 1
        row[at] = state_frame

    def model(self) -> bytes:
        """The feeder's ONNX model: `packed` [B, width], `table` -> the conversion graph's inputs."""
        g, b = _Graph(), self.batch
        at = 0
        outputs = []
        for name, shape in self.floats:
            n = int(np.prod(shape))
            g.op("Reshape", [g.slice_cols("packed", at, at + n), g.const([b, *shape])], name)
            outputs.append(_value_info(name, _FLOAT, (b, *shape)))
            at += n
        control = g.op("Cast", [g.slice_cols("packed", at, at + self.control_width)], to=_INT64)
        at = 0
        drawn = []
        for count in (self.prior_count, self.sine_count):
            runs = runs_spanned(count)
            places = g.slice_cols(control, at, at + runs)
            offset = g.slice_cols(control, at + runs, at + runs + 1)
            at += runs + 1
            # table index of every element of the runs [B, runs * 4096], then the window's stretch of them
            spans = g.op("Add", [g.op("Unsqueeze", [places, g.const([2])]), g.const(np.arange(RUN)[None, None])])
            spans = g.op("Reshape", [spans, g.const([b, runs * RUN])])
            position = g.op("Add", [g.op("Range", [g.const(0), g.const(count), g.const(1)]), offset])
            index = g.op("GatherElements", [spans, position], axis=1)
            drawn.append(g.op("Gather", ["table", index], axis=0))
        prior = g.op("Reshape", [drawn[0], g.const([b, self.frames, self.channels])])
        g.op("Transpose", [prior], "noise_prior", perm=[0, 2, 1])
        g.op("Reshape", [drawn[1], g.const([b, self.samples, self.harmonics])], "sine_noise")
        g.op("Reshape", [g.slice_cols(control, at, at + 1), g.const([b])], "state_frame")
        outputs += [
            _value_info("noise_prior", _FLOAT, (b, self.channels, self.frames)),
            _value_info("sine_noise", _FLOAT, (b, self.samples, self.harmonics)),
            _value_info("state_frame", _INT64, (b,)),
        ]
        graph = _Proto()
        for node in g.nodes:
            graph.s(1, node)
        graph.s(2, "svc_feeder")
        for init in g.inits:
            graph.s(5, init)
        graph.s(11, _value_info("packed", _FLOAT, (b, self.width)))
        graph.s(11, _value_info("table", _FLOAT, ((1 << TABLE_BITS) + RUN,)))
        for out in outputs:
            graph.s(12, out)
        model = _Proto().v(1, 8).s(2, "svc_runtime").s(7, graph).s(8, _Proto().s(1, "").v(2, OPSET))
        return bytes(model.data)

