"""The C host (hosts/c): built with CMake once per session, then compared with the Python runtime.

Its signal functions (resampling, DC filter, slicer, chunk plan, crossfade, noise) against the
svc_runtime functions they transcribe, on the same inputs through ctypes; the C ABI's error paths;
and, on a tiny bundle with a converter graph, whole-file conversion (`svc-host convert` against
`svc-run convert`), the block API against `StreamingConverter`, and a valgrind leak check.
Skips (with the reason) only where a build tool or library is missing; CI installs them (.ci/run).
"""

from __future__ import annotations

import ctypes
import json
import math
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from svc_runtime.signal.nsf_phase import limbs_to_phase

REPO = Path(__file__).resolve().parents[1]
HOST_SRC = REPO / "hosts" / "c"
MASK64 = (1 << 64) - 1

# --------------------------------------------------------------------------- build


def _missing_tools() -> str | None:
    for tool in ("cmake", "cc", "pkg-config"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (CI installs it: see .ci/run)"
    for lib in ("libcjson", "sndfile", "soxr"):
        if subprocess.run(["pkg-config", "--exists", lib]).returncode != 0:
            return f"the {lib} development package is not installed (apt-get install libcjson-dev libsndfile1-dev libsoxr-dev)"
    return None


@pytest.fixture(scope="session")
def c_host(tmp_path_factory) -> Path:
    """Build folder holding libsvchost.so and svc-host (Release build of hosts/c)."""
    reason = _missing_tools()
    if reason:
        pytest.skip(reason)
    build = tmp_path_factory.mktemp("c_host_build")
    for cmd in (["cmake", "-S", str(HOST_SRC), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", str(build), "-j", "2"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return build


class Seg(ctypes.Structure):
    _fields_ = [("start", ctypes.c_int64), ("end", ctypes.c_int64), ("silent", ctypes.c_int)]


class Chk(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int64) for k in ("win_start", "win_end", "keep_start", "keep_end")]


F32 = np.ctypeslib.ndpointer(np.float32, flags="C")
I64 = np.ctypeslib.ndpointer(np.int64, flags="C")
I32 = np.ctypeslib.ndpointer(np.int32, flags="C")


@pytest.fixture(scope="session")
def lib(c_host):
    """libsvchost through ctypes, with the prototypes of the ABI and of the internal signal functions."""
    so = ctypes.CDLL(str(c_host / "libsvchost.so"))
    i64, c_int, u64, dbl = ctypes.c_int64, ctypes.c_int, ctypes.c_uint64, ctypes.c_double
    protos = {
        "svc_splitmix64": (u64, [u64]),
        "svc_noise_base": (u64, [u64, u64, u64]),
        "svc_noise_prior": (None, [u64, u64, i64, i64, c_int, F32]),
        "svc_noise_sine": (None, [u64, u64, i64, i64, c_int, c_int, F32]),
        "svc_noise_initial_phase": (None, [u64, u64, c_int, I32]),
        "svc_resample": (c_int, [F32, i64, c_int, c_int, F32]),
        "svc_remove_dc": (c_int, [F32, i64, c_int, dbl, F32]),
        "svc_slice_on_silence": (i64, [F32, i64, c_int, dbl, ctypes.POINTER(Seg), i64]),
        "svc_plan_chunks": (i64, [i64, i64, i64, ctypes.POINTER(Chk), i64]),
        "svc_place": (c_int, [F32, i64, i64, i64, i64, i64, F32, i64, i64, i64, i64, i64]),
        "svc_host_abi_version": (c_int, []),
        "svc_host_open": (c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]),
        "svc_host_close": (None, [ctypes.c_void_p]),
        "svc_host_last_error": (ctypes.c_char_p, [ctypes.c_void_p]),
        "svc_host_sample_rate": (c_int, [ctypes.c_void_p]),
        "svc_host_speaker_count": (c_int, [ctypes.c_void_p]),
        "svc_host_speaker_name": (ctypes.c_char_p, [ctypes.c_void_p, c_int]),
        "svc_host_output_length": (i64, [ctypes.c_void_p, i64, c_int]),
        "svc_host_convert": (c_int, [ctypes.c_void_p, F32, i64, c_int, F32]),
        "svc_host_block_size": (c_int, [ctypes.c_void_p]),
        "svc_host_process_block": (c_int, [ctypes.c_void_p, F32, F32, i64]),
        "svc_host_reset": (c_int, [ctypes.c_void_p]),
        "svc_host_latency_samples": (i64, [ctypes.c_void_p]),
        "svc_host_history_samples": (i64, [ctypes.c_void_p]),
        "svc_host_reset_history": (c_int, [ctypes.c_void_p, F32, i64]),
    }
    for name, (res, args) in protos.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = res, args
    return so


SVC_OK, SVC_ERR_ARGUMENT, SVC_ERR_OPTIONS, SVC_ERR_BUNDLE, SVC_ERR_INPUT = 0, 1, 2, 3, 4


def open_host(lib, bundle: Path | str, options: dict | str | None = None):
    """(status, handle or None, error text)."""
    handle = ctypes.c_void_p()
    text = options if isinstance(options, str) or options is None else json.dumps(options)
    status = lib.svc_host_open(str(bundle).encode(), None if text is None else text.encode(), ctypes.byref(handle))
    error = lib.svc_host_last_error(None).decode()
    return status, (handle if status == SVC_OK else None), error


# --------------------------------------------------------------------------- noise


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _base(seed: int, stream: int, kind: int) -> int:
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ stream) ^ kind)


def _gauss(key: int, j: int) -> np.float32:
    """Box-Muller element j of the sequence of `key` (docs/bundle.md, "Noise"), transcribed literally."""
    p = j >> 1
    u1 = ((_splitmix64((key + 2 * p) & MASK64) >> 11) + 1) * 2.0**-53
    u2 = (_splitmix64((key + 2 * p + 1) & MASK64) >> 11) * 2.0**-53
    r = math.sqrt(-2.0 * math.log(u1))
    return np.float32(r * math.cos(2 * math.pi * u2) if j % 2 == 0 else r * math.sin(2 * math.pi * u2))


def _normal(key: int, i: int) -> np.float32:
    """normal(key, i) = table[((splitmix64(key + (i >> 12)) >> 44) + (i & 4095)) mod 2^20],
    table[j] = gauss(key(0, 0, 3), j): only the table entries asked for are computed."""
    place = _splitmix64((key + (i >> 12)) & MASK64) >> 44
    return _gauss(_base(0, 0, 3), (place + (i & 4095)) % (1 << 20))


def test_splitmix64_reference_values(lib):
    # splitmix64's published first outputs for state 0 (x = 0, then x += golden gamma each step)
    assert lib.svc_splitmix64(0) == 0xE220A8397B1DCDAF
    assert lib.svc_splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    for x in (1, 52468, MASK64, 1 << 63):
        assert lib.svc_splitmix64(x) == _splitmix64(x)
    assert lib.svc_noise_base(52468, 3, 2) == _base(52468, 3, 2)


@pytest.mark.parametrize("seed,stream,a", [(52468, 0, 5), (7, 5, 680), (MASK64, 1, 170)])
def test_noise_matches_the_contract_formula(lib, seed, stream, a):
    """a = 680 / 170: the prior / sine elements cross a 4096-element run (a new place in the table)."""
    C, hop, H, b = 6, 8, 3, a + 4
    prior = np.zeros((C, b - a), np.float32)
    lib.svc_noise_prior(seed, stream, a, b, C, prior)
    base = _base(seed, stream, 1)
    ref = np.array([[_normal(base, (a + t) * C + c) for t in range(b - a)] for c in range(C)], np.float32)
    np.testing.assert_array_equal(prior, ref)
    sine = np.zeros(((b - a) * hop, H), np.float32)
    lib.svc_noise_sine(seed, stream, a, b, hop, H, sine)
    base = _base(seed, stream, 2)
    ref = np.array([[_normal(base, (a * hop + s) * H + h) for h in range(H)] for s in range((b - a) * hop)], np.float32)
    np.testing.assert_array_equal(sine, ref)
    limbs = np.zeros((3, 9), np.int32)  # int32 limbs [3, H] of cycles * 2^40
    lib.svc_noise_initial_phase(seed, stream, 9, limbs)
    phase = limbs_to_phase(limbs)
    base = _base(seed, stream, 0)
    assert phase[0] == 0
    assert [int(v) for v in phase[1:]] == [_splitmix64((base + h) & MASK64) >> 24 for h in range(1, 9)]
    assert np.all((limbs >= 0) & (limbs < 1 << 14)) and np.all(limbs[2] < 1 << 12)
    # a normal field: mean ~0, std ~1 over a larger draw
    big = np.zeros((1, 20000), np.float32)
    lib.svc_noise_prior(seed, stream, 0, 20000, 1, big)
    assert abs(big.mean()) < 0.03 and abs(big.std() - 1.0) < 0.03


def test_noise_windows_agree_with_the_whole_stream(lib):
    """Overlapping windows of a stream draw the same numbers for the same frames."""
    C, hop, H = 4, 16, 9
    whole_p, part_p = np.zeros((C, 40), np.float32), np.zeros((C, 15), np.float32)
    lib.svc_noise_prior(1, 2, 0, 40, C, whole_p)
    lib.svc_noise_prior(1, 2, 17, 32, C, part_p)
    np.testing.assert_array_equal(whole_p[:, 17:32], part_p)
    whole_s, part_s = np.zeros((40 * hop, H), np.float32), np.zeros((15 * hop, H), np.float32)
    lib.svc_noise_sine(1, 2, 0, 40, hop, H, whole_s)
    lib.svc_noise_sine(1, 2, 17, 32, hop, H, part_s)
    np.testing.assert_array_equal(whole_s[17 * hop : 32 * hop], part_s)


def test_noise_matches_the_python_runtime(lib):
    """svc_runtime's counter-based noise (docs/bundle.md) draws the same numbers as the C host: the whole shared
    table (libm's and numpy's log / cos / sin agree on it), then windows of a stream."""
    from svc_runtime.pipeline import noise

    lib.svc_noise_table.restype = ctypes.POINTER(ctypes.c_float)
    table = np.ctypeslib.as_array(lib.svc_noise_table(), shape=(1 << 20,))
    np.testing.assert_array_equal(table, noise.normal_table())
    field = noise.NoiseStream(52468, 3, 192, 512, 9)
    prior = np.zeros((192, 70), np.float32)
    lib.svc_noise_prior(52468, 3, 11, 81, 192, prior)
    np.testing.assert_array_equal(field.prior(11, 81), prior)
    sine = np.zeros((7 * 512, 9), np.float32)
    lib.svc_noise_sine(52468, 3, 11, 18, 512, 9, sine)
    np.testing.assert_array_equal(field.sine(11, 18), sine)
    phase = np.zeros((3, 9), np.int32)
    lib.svc_noise_initial_phase(52468, 3, 9, phase)
    np.testing.assert_array_equal(field.initial_phase(), phase)


# --------------------------------------------------------------------------- signal functions


@pytest.mark.parametrize("n,rate_in,rate_out", [(44100 * 3 + 17, 44100, 16000), (48000 * 2 + 5, 48000, 44100),
                                                (22050, 22050, 44100), (999, 32000, 16000)])
def test_resample_matches_python(lib, n, rate_in, rate_out):
    from svc_runtime.audio.resample import resample

    x = (np.random.default_rng(n).standard_normal(n) * 0.3).astype(np.float32)
    ref = resample(x, rate_in, rate_out)
    out = np.full(ref.shape[0], np.nan, np.float32)
    assert lib.svc_resample(x, n, rate_in, rate_out, out) == 0
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("sr,n", [(44100, 44100 * 3 + 5), (16000, 40000), (44100, 1000)])
def test_remove_dc_matches_python(lib, sr, n):
    from svc_runtime.audio.dsp import remove_dc

    x = (np.random.default_rng(sr).standard_normal(n) * 0.3 + 0.2).astype(np.float32)
    out = np.zeros_like(x)
    assert lib.svc_remove_dc(x, n, sr, 25.0, out) == 0
    ref = remove_dc(x, sr)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-7 if n < 1765 else 0)
    in_place = x.copy()  # the host filters its resampled copy in place
    assert lib.svc_remove_dc(in_place, n, sr, 25.0, in_place) == 0
    np.testing.assert_array_equal(in_place, out)


def _c_slices(lib, x: np.ndarray, sr: int, db: float = -40.0):
    k = lib.svc_slice_on_silence(x, x.size, sr, db, None, 0)
    arr = (Seg * k)()
    lib.svc_slice_on_silence(x, x.size, sr, db, arr, k)
    return [(s.start, s.end, bool(s.silent)) for s in arr]


def test_slicer_matches_python_on_random_recordings(lib):
    from svc_runtime.signal.slicer import slice_on_silence

    rng = np.random.default_rng(0)
    multi = 0
    for trial in range(24):
        sr = (44100, 32000, 48000, 22050)[trial % 4]
        parts = []
        for _ in range(int(rng.integers(1, 8))):
            length = int(rng.integers(1, 12) * sr * rng.uniform(0.1, 1.0))
            amp = 0.3 if rng.random() < 0.5 else 10 ** rng.uniform(-5, -2)
            parts.append((rng.standard_normal(length) * amp).astype(np.float32))
        x = np.concatenate(parts)
        ref = [(s.start, s.end, s.silent) for s in slice_on_silence(x, sr)]
        assert _c_slices(lib, x, sr) == ref, trial
        multi += len(ref) > 2
    assert multi >= 5  # 6 of 24 here: the inputs exercise the slicer's branches, not only "one voiced slice"


def test_plan_chunks_matches_python(lib):
    from svc_runtime.signal.chunking import plan_chunks

    for n in (1, 5, 100, 3000, 3001, 10000):
        for window, context in ((2758, 87), (100, 10), (50, 24), (30, 5)):
            ref = [(c.win_start, c.win_end, c.keep_start, c.keep_end) for c in plan_chunks(n, window, context)]
            k = lib.svc_plan_chunks(n, window, context, None, 0)
            arr = (Chk * k)()
            lib.svc_plan_chunks(n, window, context, arr, k)
            assert [(c.win_start, c.win_end, c.keep_start, c.keep_end) for c in arr] == ref
    assert lib.svc_plan_chunks(100, 20, 10, None, 0) == -1  # window must exceed twice the context


def test_crossfade_placement_matches_python(lib):
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.signal.chunking import plan_chunks

    rng = np.random.default_rng(1)
    hop, fade = 8, 10
    for n_frames, start, pad, n_out in ((60, 30, 16, 400), (60, 0, 16, 200), (25, 100, 4, 150)):
        end = start + n_frames * hop - 2 * pad
        seg = types.SimpleNamespace(n_frames=n_frames, pad=pad, start=start, end=end)
        conv = types.SimpleNamespace(hop=hop, fade=fade)
        ref = np.zeros(n_out, np.float32)
        got = np.zeros(n_out, np.float32)
        for ch in plan_chunks(n_frames, 20, 3):
            piece = rng.standard_normal(ch.length * hop).astype(np.float32)
            Converter.place(conv, ref, seg, ch, piece)
            assert lib.svc_place(got, n_out, start, end, pad, n_frames * hop, piece, ch.win_start * hop, piece.size,
                                 ch.keep_start * hop, ch.keep_end * hop, fade) == 0
        np.testing.assert_array_equal(got, ref)


# --------------------------------------------------------------------------- C ABI: errors without a model


def _fake_bundle(tmp_path: Path, **model_overrides) -> Path:
    """A manifest-only bundle (schema 3) whose converter.onnx is not a model: enough for option errors,
    which are checked before ONNX Runtime loads the graph."""
    bundle = tmp_path / "fake_bundle"
    bundle.mkdir()
    model = dict(sampling_rate=44100, hop_length=512, ssl_dim=64, inter_channels=8, gin_channels=8, n_harmonics=9,
                 nsf_source_sampling_rate=44100, n_speakers=3, speakers={"alto": 0, "tenor": 2, "bass": 1},
                 vol_embedding=False, use_automatic_f0_prediction=False, unit_interpolate_mode="nearest",
                 speech_encoder="vec768l12")
    model.update(model_overrides)
    manifest = {"format": "svc-bundle", "schema_version": 3, "model": model,
                "speech_encoder": {"name": "contentvec", "sampling_rate": 16000, "hop_length": 320, "dim": 64},
                "graphs": {"converter": {"role": "converter", "file": "converter.onnx", "sha256": "0" * 64,
                                         "precision": "fp32", "opset": 17, "inputs": [], "outputs": []}}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (bundle / "converter.onnx").write_bytes(b"not an onnx model")
    return bundle


def test_abi_open_errors_name_the_problem(lib, tmp_path):
    assert lib.svc_host_abi_version() == 1
    status, handle, error = open_host(lib, tmp_path / "nowhere")
    assert (status, handle) == (SVC_ERR_BUNDLE, None)
    assert error == f"{tmp_path / 'nowhere'}: bundle folder not found (svc-export writes one)"

    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, error = open_host(lib, empty)
    assert status == SVC_ERR_BUNDLE and "manifest.json: not found; a bundle folder holds a manifest.json" in error

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text('{"format": "svc-bundle", "schema_version": 3, "model": {')
    status, _, error = open_host(lib, corrupt)
    assert status == SVC_ERR_BUNDLE and "manifest.json: not valid JSON" in error

    bundle = _fake_bundle(tmp_path)
    data = json.loads((bundle / "manifest.json").read_text())
    del data["model"]["hop_length"]
    (bundle / "manifest.json").write_text(json.dumps(data))
    status, _, error = open_host(lib, bundle, {"speaker": "alto"})
    assert status == SVC_ERR_BUNDLE and error.endswith("manifest.json: model.hop_length: required field is missing")
    data["model"]["hop_length"] = 512
    data["schema_version"] = 1
    (bundle / "manifest.json").write_text(json.dumps(data))
    status, _, error = open_host(lib, bundle, {"speaker": "alto"})
    assert status == SVC_ERR_BUNDLE and "the bundle has 1; re-export the bundle" in error
    data["schema_version"] = 2  # int64 phases: refused the same way
    (bundle / "manifest.json").write_text(json.dumps(data))
    status, _, error = open_host(lib, bundle, {"speaker": "alto"})
    assert status == SVC_ERR_BUNDLE and "reads version 3" in error and "the bundle has 2; re-export the bundle" in error
    data["schema_version"] = 3
    data["graphs"]["converter"]["role"] = "generator"
    (bundle / "manifest.json").write_text(json.dumps(data))
    status, _, error = open_host(lib, bundle, {"speaker": "alto"})
    assert status == SVC_ERR_BUNDLE and "the bundle has no converter graph" in error
    data["graphs"]["converter"]["role"] = "converter"
    (bundle / "manifest.json").write_text(json.dumps(data))
    (bundle / "converter.onnx").unlink()
    status, _, error = open_host(lib, bundle, {"speaker": "alto"})
    assert status == SVC_ERR_BUNDLE and "converter.onnx: graph converter listed in manifest.json is missing" in error


def test_abi_any_corrupt_manifest_is_an_error_not_a_crash(lib, tmp_path):
    """Truncations, wrong types and random bytes in manifest.json: always SVC_ERR_BUNDLE with a message."""
    bundle = _fake_bundle(tmp_path)
    text = (bundle / "manifest.json").read_text()
    data = json.loads(text)
    variants = [text[:k] for k in range(0, len(text), max(1, len(text) // 25))]
    variants += [json.dumps(dict(data, model=[])), json.dumps(dict(data, graphs=[1, 2])), "null", "[]", "1e999",
                 json.dumps(dict(data, model=dict(data["model"], speakers={"x": "zero"}))),
                 json.dumps(dict(data, model=dict(data["model"], sampling_rate=-5))),
                 json.dumps(dict(data, graphs={"c": {"role": "converter", "file": "../etc/passwd"}})),
                 json.dumps(dict(data, graphs={"c": "converter"}))]
    rng = np.random.default_rng(0)
    variants += [rng.bytes(200).decode("latin-1") for _ in range(5)]
    for variant in variants:
        (bundle / "manifest.json").write_text(variant, encoding="latin-1")
        status, handle, error = open_host(lib, bundle, {"speaker": "alto"})
        assert (status, handle) == (SVC_ERR_BUNDLE, None), variant[:200]
        assert error.startswith(str(bundle)), error


@pytest.mark.parametrize("options,message", [
    ({"speaker": "soprano"}, "unknown speaker 'soprano'; the bundle has ['alto', 'bass', 'tenor']"),
    ({}, "choose a speaker: the bundle has ['alto', 'bass', 'tenor']"),
    ({"speaker": 7}, "speaker id 7 out of range: the model has 3 speakers"),
    ('{"speaker": "alto", ', "options: not valid JSON"),
    ("[1, 2]", "options: expected a JSON object"),
    ({"speaker": "alto", "transpos": 2}, "options: unknown key 'transpos'; known keys: speaker, transpose"),
    ({"speaker": "alto", "transpose": 60}, "options: transpose must be within +-48 semitones"),
    ({"speaker": "alto", "noise_scale": "loud"}, "options: noise_scale must be a number"),
    ({"speaker": "alto", "seed": 1.5}, "options: seed, threads and block_size must be whole numbers"),
    ({"speaker": "alto", "remove_dc": 1}, "options: remove_dc must be true or false"),
])
def test_abi_option_errors_are_as_specific_as_python(lib, tmp_path, options, message):
    status, handle, error = open_host(lib, _fake_bundle(tmp_path), options)
    assert (status, handle) == (SVC_ERR_OPTIONS, None)
    assert error.startswith(message), error


def test_abi_graph_ort_cannot_load_is_a_runtime_error(lib, tmp_path):
    status, handle, error = open_host(lib, _fake_bundle(tmp_path), {"speaker": "tenor"})
    assert handle is None and status == 5
    assert "converter.onnx: load:" in error


def test_abi_null_arguments_are_errors(lib):
    assert lib.svc_host_open(b"x", None, None) == SVC_ERR_ARGUMENT
    assert lib.svc_host_convert(None, np.zeros(4, np.float32), 4, 44100, np.zeros(4, np.float32)) == SVC_ERR_ARGUMENT
    assert lib.svc_host_process_block(None, np.zeros(4, np.float32), np.zeros(4, np.float32), 4) == SVC_ERR_ARGUMENT
    assert lib.svc_host_reset(None) == SVC_ERR_ARGUMENT
    assert lib.svc_host_sample_rate(None) == 0 and lib.svc_host_speaker_name(None, 0) is None
    lib.svc_host_close(None)


# --------------------------------------------------------------------------- bundles with a converter graph


@pytest.fixture(scope="session")
def converter_bundle(tmp_path_factory) -> Path:
    """The pipeline tests' small model (tests/pipeline_fixture.py: sovits41_small with 64-dim units, contentvec_small)
    exported with the rmvpe_small pitch network, so the bundle has a `converter` graph (pitch inside)."""
    torch = pytest.importorskip("torch")
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint

    fixtures = REPO / "tests" / "fixtures"
    work = tmp_path_factory.mktemp("c_host_bundle")
    config = json.loads((fixtures / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = 64
    (work / "config.json").write_text(json.dumps(config, indent=2))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    save_checkpoint(work / "G.pth", build_generator(work / "config.json"), 0, 1e-4)
    manifest = export_bundle(ExportRequest(
        checkpoint=work / "G.pth", config=work / "config.json", output=work / "bundle",
        encoder_checkpoint=fixtures / "contentvec_small" / "fairseq_checkpoint.pt",
        pitch="rmvpe", pitch_checkpoint=fixtures / "rmvpe_small" / "rmvpe.pt", simplify=False,
    ))
    torch.set_num_threads(previous)
    assert any(g.role == "converter" for g in manifest.graphs.values()), "svc-export wrote no converter graph"
    return work / "bundle"


def tiny_converter_graph(path: Path, channels: int, harmonics: int, speakers: int, dim: int,
                         identity: bool = False) -> None:
    """A stand-in converter.onnx with the real graph's inputs and outputs and almost no compute (audio = the mean
    of the sine noise times noise_scale, phase_out = phase_in limbs + state_frame): it isolates the host's own cost and
    memory, for the valgrind run and the per-block overhead. identity: a vol_embedding model's graph (input
    audio_in) whose audio output is its audio_in, so the host's windowing and stitching must give back its input."""
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as oh

    f, i64, i32 = TP.FLOAT, TP.INT64, TP.INT32
    inputs = [("audio_in", f, ["B", "L"])] if identity else []
    inputs += [("wav16k", f, ["B", "N16"]), ("speaker", f, ["B", "T", speakers]), ("f0_scale", f, ["B"]),
              ("noise_scale", f, [1]), ("noise_prior", f, ["B", channels, "T"]),
              ("sine_noise", f, ["B", "L", harmonics]), ("phase_in", i32, ["B", 3, harmonics]),
              ("state_frame", i64, ["B"]), ("cluster_centres", f, ["K", dim]), ("cluster_ratio", f, [1])]
    outputs = [("audio", f, ["B", 1, "L"]), ("f0", f, ["B", "T"]), ("uv", f, ["B", "T"]),
               ("phase_out", i32, ["B", 3, harmonics])]
    axis1 = oh.make_tensor("axis1", i64, [1], [1])
    axes12 = oh.make_tensor("axes12", i64, [2], [1, 2])
    nodes = [oh.make_node("ReduceMean", ["sine_noise"], ["mean"], axes=[2], keepdims=0),
             oh.make_node("Mul", ["mean", "noise_scale"], ["scaled"]),
             oh.make_node("Unsqueeze", ["audio_in" if identity else "scaled", "axis1"], ["audio"]),
             oh.make_node("ReduceMean", ["noise_prior"], ["f0"], axes=[1], keepdims=0),
             oh.make_node("ReduceMean", ["speaker"], ["uv"], axes=[2], keepdims=0),
             oh.make_node("Cast", ["state_frame"], ["state32"], to=i32),
             oh.make_node("Unsqueeze", ["state32", "axes12"], ["state_column"]),
             oh.make_node("Add", ["phase_in", "state_column"], ["phase_out"])]
    graph = oh.make_graph(nodes, "tiny_converter", [oh.make_tensor_value_info(*x) for x in inputs],
                          [oh.make_tensor_value_info(*x) for x in outputs], initializer=[axis1, axes12])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tiny_copy(bundle: Path, dest: Path) -> Path:
    """A copy of `bundle` whose converter.onnx is the stand-in graph (manifest entry updated, sha256 included), so
    svc_runtime's Bundle loads it too: the per-block overhead of both hosts without the networks' cost."""
    import hashlib

    shutil.copytree(bundle, dest)
    data = json.loads((dest / "manifest.json").read_text())
    m = data["model"]
    name, entry = next((k, g) for k, g in data["graphs"].items() if g["role"] == "converter")
    tiny_converter_graph(dest / entry["file"], m["inter_channels"], m["n_harmonics"], m["n_speakers"], m["ssl_dim"])
    entry["sha256"] = hashlib.sha256((dest / entry["file"]).read_bytes()).hexdigest()
    entry["inputs"] = [i for i in entry["inputs"] if i["name"] != "auto_f0"]
    (dest / "manifest.json").write_text(json.dumps(data, indent=2))
    return dest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    bundle = _fake_bundle(tmp_path_factory.mktemp("tiny"))
    tiny_converter_graph(bundle / "converter.onnx", channels=8, harmonics=9, speakers=3, dim=64)
    return bundle


def _stereo_song(sr: int = 48000, lead_in_s: float = 0.0) -> np.ndarray:
    """Two phrases (vibrato tones, the first over the slicer's 5 s minimum) with 1.2 s of near-silence between
    them, so the slicer makes two voiced slices (noise streams 0 and 1), after `lead_in_s` of near-silence (over
    5 s: a silent slice), with a DC offset: [N, 2] float32."""
    sys.path.insert(0, str(REPO / "tests"))
    from pipeline_fixture import vibrato_tone

    a, _ = vibrato_tone(5.5, sr=sr)
    b, _ = vibrato_tone(2.1, sr=sr, base_hz=300.0)
    rng = np.random.default_rng(3)
    quiet = (rng.standard_normal(int(1.2 * sr)) * 1e-4).astype(np.float32)
    lead_in = (rng.standard_normal(int(lead_in_s * sr)) * 1e-4).astype(np.float32)
    mono = np.concatenate([lead_in, a, quiet, 0.7 * b]) + 0.01
    return np.stack([mono, 0.8 * mono], axis=1).astype(np.float32)


@pytest.mark.slow
def test_svc_host_convert_matches_svc_run(c_host, converter_bundle, tmp_path):
    """Same file, bundle, speaker, transpose, seed: the two programs' output files agree (two voiced slices, several
    windows per slice, 48 kHz stereo in, 44.1 kHz out)."""
    import soundfile

    song = tmp_path / "song.wav"
    soundfile.write(song, _stereo_song(), 48000, subtype="FLOAT")
    common = ["--bundle", str(converter_bundle), "--speaker", "bob", "--transpose", "3", "--seed", "11",
              "--max-window", "2", "--context-seconds", "0.5"]
    py = subprocess.run(["svc-run", "convert", str(song), "-o", str(tmp_path / "py"), *common],
                        capture_output=True, text=True)
    assert py.returncode == 0, py.stderr[-3000:]
    c = subprocess.run([str(c_host / "svc-host"), "convert", str(song), str(tmp_path / "c.wav"), *common],
                       capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    ref, sr_ref = soundfile.read(tmp_path / "py" / "song.wav", dtype="float32")
    got, sr_got = soundfile.read(tmp_path / "c.wav", dtype="float32")
    assert sr_got == sr_ref == 44100 and got.shape == ref.shape
    assert np.abs(ref).max() > 1e-3  # real audio, not silence
    assert np.abs(got - ref).max() <= 1e-4
    # measured: byte-identical files (svc-host writes PCM 16 by soundfile's rule, floor(x * 32768))
    assert (tmp_path / "c.wav").read_bytes() == (tmp_path / "py" / "song.wav").read_bytes()


@pytest.mark.parametrize("options", [
    dict(speaker="alice", transpose=-2.5, seed=5, noise_scale=0.3, max_window_seconds=2.0, context_seconds=0.5),
    dict(speaker=1, transpose=7, seed=0, clip_seconds=1.5, context_seconds=0.3, pad_seconds=0.3,
         crossfade_seconds=0.02, slice_db=-35.0, remove_dc=False),
], ids=["windows", "clip_pad_fade_slice_dc"])
def test_abi_convert_matches_the_python_converter(lib, converter_bundle, options):
    """svc_host_convert against svc_runtime's Converter on the same samples and options (float output)."""
    from svc_runtime import Bundle
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions

    x = np.ascontiguousarray(_stereo_song(32000).mean(axis=1, dtype=np.float64).astype(np.float32))
    conv = Converter(Bundle.load(converter_bundle), ConvertOptions(**options))
    ref = conv.render([conv.prepare(types.SimpleNamespace(samples=x, sample_rate=32000, notes=[]))])[0]
    status, host, error = open_host(lib, converter_bundle, dict(options, threads=1))
    assert status == SVC_OK, error
    try:
        n_out = lib.svc_host_output_length(host, x.size, 32000)
        assert n_out == ref.shape[0] == round(x.size * 44100 / 32000)
        out = np.zeros(n_out, np.float32)
        assert lib.svc_host_convert(host, x, x.size, 32000, out) == SVC_OK, lib.svc_host_last_error(host)
        assert np.abs(ref).max() > 1e-3
        assert np.abs(out - ref).max() <= 1e-5  # measured 0 (bit-equal) on the machine that wrote this test
    finally:
        lib.svc_host_close(host)


# --------------------------------------------------------------------------- the whole C ABI, streaming


def test_abi_round_trip_and_bad_input(lib, tiny_bundle):
    """Every ABI function on a bundle whose graph is trivial: queries, conversion, streaming, reset, and the
    error codes of bad input (NaN samples, wrong block size, no streaming configured), never a crash."""
    status, host, error = open_host(lib, tiny_bundle, {"speaker": "tenor", "block_size": 882, "threads": 1})
    assert status == SVC_OK, error
    try:
        assert lib.svc_host_sample_rate(host) == 44100
        assert lib.svc_host_speaker_count(host) == 3
        assert [lib.svc_host_speaker_name(host, i).decode() for i in range(3)] == ["alto", "tenor", "bass"]
        assert lib.svc_host_speaker_name(host, 3) is None and lib.svc_host_speaker_name(host, -1) is None
        assert lib.svc_host_block_size(host) == 882
        # StreamingConverter's latency for 20 ms blocks, 40 ms look-ahead, 5 ms fade at hop 512: block + 2 frames
        # of look-ahead + frame rounding (511) + fade (220)
        assert lib.svc_host_latency_samples(host) == 882 + 2 * 512 + 511 + 220
        assert lib.svc_host_output_length(host, 48000, 48000) == 44100

        x = (np.sin(np.arange(44100) * 0.05) * 0.3).astype(np.float32)
        out = np.zeros(44100, np.float32)
        assert lib.svc_host_convert(host, x, x.size, 44100, out) == SVC_OK
        assert np.abs(out).max() > 0
        bad = x.copy()
        bad[[10, 500]] = np.nan
        assert lib.svc_host_convert(host, bad, bad.size, 44100, out) == SVC_ERR_INPUT
        assert lib.svc_host_last_error(host).decode() == (
            "input contains 2 non-finite samples (NaN or Inf); repair or re-export the audio")
        assert lib.svc_host_convert(host, x, x.size, 0, out) == SVC_ERR_ARGUMENT

        blocks = [np.ascontiguousarray(x[i * 882 : (i + 1) * 882]) for i in range(12)]
        first = np.zeros((12, 882), np.float32)
        for i, block in enumerate(blocks):
            assert lib.svc_host_process_block(host, block, first[i], 882) == SVC_OK, lib.svc_host_last_error(host)
        assert np.abs(first).max() > 0
        assert lib.svc_host_process_block(host, blocks[0][:100].copy(), first[0], 100) == SVC_ERR_ARGUMENT
        assert lib.svc_host_last_error(host).decode() == "expected a block of 882 samples, got 100"
        assert lib.svc_host_reset(host) == SVC_OK
        again = np.zeros((12, 882), np.float32)
        for i, block in enumerate(blocks):
            assert lib.svc_host_process_block(host, block, again[i], 882) == SVC_OK
        np.testing.assert_array_equal(again, first)  # reset starts the same stream again
        nan_block = blocks[0].copy()
        nan_block[5] = np.inf
        out_block = np.full(882, np.nan, np.float32)
        assert lib.svc_host_process_block(host, nan_block, out_block, 882) == SVC_ERR_INPUT
        assert "1 non-finite samples (NaN or Inf); they were converted as 0" in lib.svc_host_last_error(host).decode()
        assert np.all(np.isfinite(out_block))  # the stream went on
    finally:
        lib.svc_host_close(host)

    status, host, error = open_host(lib, tiny_bundle, {"speaker": "tenor"})
    assert status == SVC_OK, error
    try:
        assert lib.svc_host_block_size(host) == 0 and lib.svc_host_latency_samples(host) == 0
        block = np.zeros(882, np.float32)
        assert lib.svc_host_process_block(host, block, block, 882) == SVC_ERR_ARGUMENT
        assert "streaming is off" in lib.svc_host_last_error(host).decode()
    finally:
        lib.svc_host_close(host)
    status, _, error = open_host(lib, tiny_bundle, {"speaker": "tenor", "block_size": 100})
    assert status == SVC_ERR_OPTIONS and error == "block size 100 samples (2.3 ms) is outside 20-500 ms at 44100 Hz"


def test_svc_host_errors_are_one_line(c_host, tiny_bundle, tmp_path):
    exe = str(c_host / "svc-host")
    done = subprocess.run([exe, "convert", str(tmp_path / "missing.wav"), str(tmp_path / "o.wav"), "--bundle",
                           str(tiny_bundle)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == f"{tmp_path / 'missing.wav'}: file does not exist"
    import soundfile

    soundfile.write(tmp_path / "in.wav", np.zeros(4410, np.float32), 44100)
    done = subprocess.run([exe, "convert", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"), "--bundle",
                           str(tiny_bundle), "--speaker", "nobody"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == "svc-host: unknown speaker 'nobody'; the bundle has ['alto', 'bass', 'tenor']"
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_block_api_has_no_leaks_under_valgrind(c_host, tiny_bundle, tmp_path):
    """200+ blocks through svc_host_process_block (svc-host --block-ms) under valgrind: no definite leaks and no
    invalid reads or writes. The trivial graph keeps ONNX Runtime's share of the run short."""
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (CI installs it: see .ci/run)")
    import soundfile

    x = (np.sin(np.arange(int(4.0 * 44100)) * 0.05) * 0.3).astype(np.float32)  # 200 blocks of 20 ms
    soundfile.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    done = subprocess.run(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", str(c_host / "svc-host"), "convert",
         str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--bundle", str(tiny_bundle), "--speaker", "alto",
         "--block-ms", "20", "--threads", "1"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = done.stderr
    assert "definitely lost: 0 bytes in 0 blocks" in report or "no leaks are possible" in report, report[-3000:]
    for problem in ("Invalid read", "Invalid write", "Invalid free", "uninitialised value"):
        assert problem not in report or "libsvchost" not in report.split(problem, 1)[1][:3000], report[-6000:]
    out, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert out.shape == x.shape and np.abs(out).max() > 0

    # error paths free what they allocated: a manifest with a bad speaker id, an unknown speaker
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    data = json.loads((tiny_bundle / "manifest.json").read_text())
    data["model"]["speakers"]["bass"] = "one"
    (corrupt / "manifest.json").write_text(json.dumps(data))
    for bundle, speaker in ((corrupt, "alto"), (tiny_bundle, "nobody")):
        done = subprocess.run(
            ["valgrind", "--leak-check=full", "--error-exitcode=9", str(c_host / "svc-host"), "convert",
             str(tmp_path / "in.wav"), str(tmp_path / "never.wav"), "--bundle", str(bundle), "--speaker", speaker],
            capture_output=True, text=True, timeout=300)
        assert done.returncode == 1, done.stderr[-3000:]  # the program's own error, not valgrind's 9
        assert "definitely lost: 0 bytes in 0 blocks" in done.stderr or "no leaks are possible" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("block_ms", [20.0, 100.0])
def test_block_api_matches_streaming_converter(lib, converter_bundle, block_ms):
    """The same stream through svc_host_process_block and StreamingConverter.process, block by block; then both
    reset and run again, then both reset with a history (a resumed stream) and run again."""
    from svc_runtime import Bundle
    from svc_runtime.streaming import StreamingConverter, StreamingOptions

    sys.path.insert(0, str(REPO / "tests"))
    from pipeline_fixture import vibrato_tone

    block = int(round(block_ms * 44100 / 1000))
    x, _ = vibrato_tone(1.6)
    n_blocks = x.size // block
    py = StreamingConverter(Bundle.load(converter_bundle), block,
                            StreamingOptions(speaker="bob", transpose=4, seed=9, noise_scale=0.5))
    status, host, error = open_host(lib, converter_bundle, {"speaker": "bob", "transpose": 4, "seed": 9,
                                                            "noise_scale": 0.5, "block_size": block, "threads": 1})
    assert status == SVC_OK, error
    try:
        assert lib.svc_host_latency_samples(host) == py.latency_samples
        lead = lib.svc_host_history_samples(host)
        assert lead == py.window * py.hop
        history = np.ascontiguousarray(x[-lead:][::-1])  # a resumed stream: some audio before its first block
        for rep in range(3):
            ref = np.concatenate([py.process(x[i * block : (i + 1) * block]) for i in range(n_blocks)])
            got = np.zeros((n_blocks, block), np.float32)
            for i in range(n_blocks):
                chunk = np.ascontiguousarray(x[i * block : (i + 1) * block])
                assert lib.svc_host_process_block(host, chunk, got[i], block) == SVC_OK, lib.svc_host_last_error(host)
            assert np.abs(ref).max() > 1e-3
            assert np.abs(got.reshape(-1) - ref).max() <= 1e-4  # measured 0 (bit-equal)
            if rep == 0:
                py.reset()
                assert lib.svc_host_reset(host) == SVC_OK
            else:
                py.reset(history)
                assert lib.svc_host_reset_history(host, history, lead) == SVC_OK, lib.svc_host_last_error(host)
        assert lib.svc_host_reset_history(host, history[:-1].copy(), lead - 1) == SVC_ERR_ARGUMENT
        assert lib.svc_host_last_error(host).decode() == f"history must be {lead} samples (one window), got {lead - 1}"
    finally:
        lib.svc_host_close(host)


@pytest.fixture(scope="session")
def identity_bundle(tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    bundle = _fake_bundle(tmp_path_factory.mktemp("identity"), vol_embedding=True)
    tiny_converter_graph(bundle / "converter.onnx", 8, 9, 3, 64, identity=True)
    return bundle


def test_windows_and_crossfades_give_back_an_identity_graphs_input(lib, identity_bundle):
    """With a graph that returns its model-rate window (audio_in), whole-buffer conversion must rebuild the
    DC-filtered, resampled input on every voiced slice (windows overlap, crossfade weights sum to 1) and leave the
    silent slices at 0; streaming must return the input delayed by exactly the latency minus one block."""
    from svc_runtime.audio.dsp import remove_dc
    from svc_runtime.audio.resample import resample
    from svc_runtime.signal.slicer import slice_on_silence

    x = np.ascontiguousarray(_stereo_song(48000, lead_in_s=5.5)[:, 0])
    status, host, error = open_host(lib, identity_bundle, {"speaker": "bass", "max_window_seconds": 2.0,
                                                             "context_seconds": 0.5, "block_size": 1000})
    assert status == SVC_OK, error
    try:
        out = np.zeros(lib.svc_host_output_length(host, x.size, 48000), np.float32)
        assert lib.svc_host_convert(host, x, x.size, 48000, out) == SVC_OK, lib.svc_host_last_error(host)
        model_rate = remove_dc(resample(x, 48000, 44100), 44100)
        expected = np.zeros_like(model_rate)
        segments = slice_on_silence(model_rate, 44100)
        assert [s.silent for s in segments if s.length] == [True, False, False]
        for seg in segments:
            if not seg.silent:
                expected[seg.start : seg.end] = model_rate[seg.start : seg.end]
        assert np.abs(out - expected).max() <= 1e-6  # float32 ramps w and 1 - w sum to 1 within 1 ulp

        y = np.ascontiguousarray(model_rate[: 40 * 1000])
        streamed = np.zeros((40, 1000), np.float32)
        for i in range(40):
            assert lib.svc_host_process_block(host, np.ascontiguousarray(y[i * 1000 : (i + 1) * 1000]), streamed[i],
                                              1000) == SVC_OK
        delay = lib.svc_host_latency_samples(host) - 1000
        streamed = streamed.reshape(-1)
        np.testing.assert_allclose(streamed[delay:], y[: y.size - delay], rtol=0, atol=1e-6)
        assert np.all(streamed[:delay] == 0)
    finally:
        lib.svc_host_close(host)


def test_svc_host_block_mode_lines_up_with_its_input(c_host, identity_bundle, tmp_path):
    """svc-host --block-ms streams the file (resampled to the model rate) and removes the stream's delay: with the
    identity graph the output file is the model-rate input, sample for sample."""
    import soundfile

    from svc_runtime.audio.resample import resample

    x = np.ascontiguousarray(_stereo_song(48000)[: 3 * 48000, 0])
    soundfile.write(tmp_path / "in.wav", x, 48000, subtype="FLOAT")
    done = subprocess.run([str(c_host / "svc-host"), "convert", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                           "--bundle", str(identity_bundle), "--speaker", "alto", "--block-ms", "50",
                           "--subtype", "float"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out, sr = soundfile.read(tmp_path / "out.wav", dtype="float32")
    expected = resample(x, 48000, 44100)
    assert sr == 44100 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
