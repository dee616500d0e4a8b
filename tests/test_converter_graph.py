"""The conversion graph (issue 13): its parts against the numpy reference, its carried state, and its
output against the pipeline it replaced.

`fixtures/converter_parity/pipeline_before.npz` holds the audio of the pre-converter runtime (a worktree at
371c344, which differs from 01518e6 only by importing its constants from svc_runtime/vocabulary.py: encoder,
pitch and generator graphs with numpy glue between them, run with today's noise in place of its own), made on the
sovits41_small architecture (ssl_dim 64, generator initialised with seed 1234, the contentvec_small
encoder; FCPE with its wheel weights for the third case) with the same counter-based noise, speaker
`bob`. The same checkpoint exported today must give the same audio through the conversion graph.
Measured when the fixture was made (with the table noise of docs/bundle.md): 1.5e-8 (pm, one window),
2.9e-6 (pm, 2 s windows, 6 s input), 3.3e-7 (FCPE inside the graph, +3 semitones); peaks are 0.052.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from svc_export.converter_graph import (
    PHASE_ONE,
    SalienceToF0,
    fill_unvoiced,
    frame_phases,
    left_columns,
    nearest_columns,
    volume_frames,
)
from svc_runtime.pitch.decode import decode_fcpe, decode_rmvpe
from svc_runtime.signal.f0 import interpolate_unvoiced, nearest_indices
from svc_runtime.signal.nsf_phase import (
    PHASE_MAX_FRAMES,
    frame_start_phases,
    limbs_to_cycles,
    limbs_to_phase,
    phase_increments,
    phase_to_limbs,
)
from svc_runtime.signal.units import left_indices
from svc_runtime.signal.volume import volume_envelope

FIXTURES = Path(__file__).parent / "fixtures"
SR, HOP = 44100, 512


# --------------------------------------------------------------------------- parts vs numpy


@pytest.mark.parametrize("n_in,n_out", [(50, 86), (1, 7), (100, 100), (43, 86), (1499, 2583), (7, 3)])
def test_column_picks_equal_the_numpy_alignment(n_in, n_out):
    like = torch.zeros(1, 1, n_out)
    n_in_t, n_out_t = torch.tensor(n_in), torch.tensor(n_out)
    np.testing.assert_array_equal(nearest_columns(n_in_t, n_out_t, like).numpy(), nearest_indices(n_in, n_out))
    if n_out >= n_in:  # every so-vits-svc 4.1 model has more frames than units
        np.testing.assert_array_equal(left_columns(n_in_t, n_out_t, like).numpy(), left_indices(n_in, n_out))


def test_unvoiced_frames_are_filled_as_so_vits_svc_does():
    rng = np.random.default_rng(0)
    f0 = rng.uniform(100, 400, (4, 50)).astype(np.float32)
    f0[0, :5] = 0
    f0[0, 20:30] = 0
    f0[0, 45:] = 0
    f0[1, :] = 0  # nothing voiced: stays 0
    f0[2, :] = 0
    f0[2, 10] = 200  # one voiced frame: everywhere
    f0[3, ::2] = 0
    filled, uv = fill_unvoiced(torch.from_numpy(f0))
    for b in range(4):
        ref, ref_uv = interpolate_unvoiced(f0[b])
        np.testing.assert_allclose(filled[b].numpy(), ref, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(uv[b].numpy(), ref_uv)


def test_limb_phases_equal_the_float64_accumulation_and_carry_exactly():
    """Ten minutes of frames at 44.1 kHz / 512: the graph's int32-limb phases equal the float64 reference to
    float32 rounding, and a run split in two with the carried phase gives the same phases bit for bit."""
    rng = np.random.default_rng(1)
    frames = 10 * 60 * SR // HOP
    f0 = (220 * 2 ** rng.uniform(-1, 1, (1, frames))).astype(np.float32)
    f0[:, 1000:1500] = 0  # silence does not advance the phase
    f0[:, 2000:2100] = -30.0  # a predicted F0 can be negative
    rand = rng.random((1, 9)).astype(np.float32)
    rand[:, 0] = 0
    start = torch.from_numpy(phase_to_limbs(np.floor(rand.astype(np.float64) * PHASE_ONE).astype(np.int64)))
    ref, end = frame_start_phases(f0, HOP, rand_ini=rand)
    phases, out = frame_phases(torch.from_numpy(f0), HOP, 44100.0, 9, start, torch.tensor([frames]))
    assert np.abs(phases.numpy() - ref.astype(np.float32)).max() <= 1.2e-7
    assert out.dtype == torch.int32 and out.shape == (1, 3, 9)
    assert np.abs(limbs_to_cycles(out.numpy())[0] - end[0]).max() < 1e-9
    k = 12345
    _, mid = frame_phases(torch.from_numpy(f0), HOP, 44100.0, 9, start, torch.tensor([k]))
    second, out2 = frame_phases(torch.from_numpy(f0[:, k:]), HOP, 44100.0, 9, mid, torch.tensor([frames - k]))
    np.testing.assert_array_equal(second.numpy(), phases.numpy()[:, k:])
    np.testing.assert_array_equal(out2.numpy(), out.numpy())


def test_limb_phases_stay_exact_at_the_window_bound_with_the_largest_values():
    """The longest window (PHASE_MAX_FRAMES), hop 1023 and increments just below one cycle per sample: every
    limb sum is at its largest, and the phases still equal an int64 accumulation bit for bit."""
    frames, hop = PHASE_MAX_FRAMES, 1023
    rng = np.random.default_rng(3)
    f0 = np.full((2, frames), np.float32(44100 * (1 - 2**-24)), np.float32)
    f0[1] = (220 * 2 ** rng.uniform(-3, 4, frames)).astype(np.float32)
    fixed = np.full((2, 9), (1 << 40) - 1, np.int64)
    state = torch.tensor([frames, 9999])
    phases, out = frame_phases(torch.from_numpy(f0), hop, 44100.0, 9, torch.from_numpy(phase_to_limbs(fixed)), state)
    quantum = np.floor(phase_increments(f0).astype(np.float64) * PHASE_ONE).astype(np.int64)
    running = np.cumsum(quantum * hop % PHASE_ONE, axis=1)
    before = (fixed[:, None] + running - quantum * hop % PHASE_ONE) % PHASE_ONE
    np.testing.assert_array_equal(phases.numpy(), (before.astype(np.float32) * np.float32(2.0**-40)))
    want = [(fixed[b] + (running[b, k - 1] if k else 0)) % PHASE_ONE for b, k in enumerate(state.tolist())]
    np.testing.assert_array_equal(limbs_to_phase(out.numpy()), np.stack(want))
    assert out.min() >= 0 and out[:, :2].max() < 1 << 14 and out[:, 2].max() < 1 << 12


def test_limbs_round_trip():
    fixed = np.random.default_rng(4).integers(0, 1 << 40, (4, 9))
    limbs = phase_to_limbs(fixed)
    assert limbs.dtype == np.int32 and limbs.shape == (4, 3, 9)
    np.testing.assert_array_equal(limbs_to_phase(limbs), fixed)
    np.testing.assert_array_equal(limbs[:, 2], fixed >> 28)


def test_a_window_longer_than_the_phase_limbs_allow_is_refused():
    from svc_runtime.pipeline.noise import NoiseStream
    from svc_runtime.pipeline.window import Controls, Window, window_feeds

    noise = NoiseStream(1, 0, 4, HOP, 9)
    window = Window(wav16k=np.zeros(16, np.float32), start=0, frames=PHASE_MAX_FRAMES + 1, noise=noise,
                    phase_in=noise.initial_phase(), state_frame=0, speaker=np.zeros((1, 1), np.float32))
    with pytest.raises(ValueError, match=f"longer than .* allows \\({PHASE_MAX_FRAMES} frames\\)"):
        window_feeds("converter", [window], Controls.create(0.0, 0.4, 4), ("phase_in",))


def test_salience_decoders_and_volume_equal_the_numpy_ones():
    rng = np.random.default_rng(2)
    salience = (rng.random((2, 100, 360)).astype(np.float32) ** 8)
    salience[:, ::7] *= 0.04  # some frames below the threshold: unvoiced
    rmvpe = SalienceToF0("rmvpe", 360, 0.05)(torch.from_numpy(salience)).numpy()
    np.testing.assert_allclose(rmvpe, decode_rmvpe(salience, 0.05), atol=5e-3)  # Hz; float32 cents (measured 1.5e-3)
    fcpe = SalienceToF0("fcpe", 360, 0.05, (32.7, 1975.5), (50.0, 1100.0))(torch.from_numpy(salience)).numpy()
    np.testing.assert_allclose(fcpe, decode_fcpe(salience, "local_argmax", 0.05), atol=5e-3)  # measured 4.9e-4
    assert (rmvpe == 0).any() and (rmvpe > 0).any()
    x = rng.standard_normal((2, 86 * HOP)).astype(np.float32) * 0.1
    vol = volume_frames(torch.from_numpy(x), HOP, torch.zeros(1, 1, 86)).numpy()
    np.testing.assert_allclose(vol, volume_envelope(x, HOP), atol=1e-7)  # measured 1.5e-8
    with pytest.raises(ValueError, match="no in-graph decoder"):
        SalienceToF0("crepe", 360, 0.05)


# --------------------------------------------------------------------------- exported bundles


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    f0 = 220.0 * 2.0 ** (0.3 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wave = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    return (0.3 * wave * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) / 1.5).astype(np.float32)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_runtime import Bundle
    from svc_train.checkpoint import build_generator, save_checkpoint

    torch.set_num_threads(2)
    made = {}
    for pitch in (None, "fcpe"):
        work = tmp_path_factory.mktemp(pitch or "nopitch")
        config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
        config["model"]["ssl_dim"] = 64
        (work / "config.json").write_text(json.dumps(config, indent=2))
        torch.manual_seed(1234)
        save_checkpoint(work / "G.pth", build_generator(work / "config.json"), 0, 1e-4)
        export_bundle(ExportRequest(checkpoint=work / "G.pth", config=work / "config.json", output=work / "bundle",
                                    encoder_checkpoint=FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt",
                                    pitch=pitch, simplify=False))
        made[pitch] = Bundle.load(work / "bundle")
    return made


CASES = [  # name, pitch graph, F0 method, seconds, options, tolerance (~10x the measured error)
    ("pm_single", None, "pm", 2.5, {}, 1e-6),
    ("pm_multi", None, "pm", 6.0, {"max_window_seconds": 2.0}, 4e-5),
    ("fcpe_single", "fcpe", None, 2.5, {"transpose": 3.0}, 5e-6),
]


@pytest.mark.parametrize("name,pitch,method,seconds,extra,tolerance", CASES, ids=[c[0] for c in CASES])
def test_conversion_graph_reproduces_the_pipeline_it_replaced(bundles, name, pitch, method, seconds, extra, tolerance):
    from svc_runtime.pipeline import Converter, ConvertOptions

    before = np.load(FIXTURES / "converter_parity" / "pipeline_before.npz")[name]
    conv = Converter(bundles[pitch], ConvertOptions(speaker="bob", f0_method=method, **extra))
    assert conv.role == ("converter" if pitch else "converter_f0")
    out = conv.convert(_tone(seconds), SR)
    assert out.shape == before.shape
    error = float(np.abs(out - before).max())
    assert error <= tolerance, f"{name}: {error:.2e} from the pre-converter pipeline"


def test_manifest_lists_the_conversion_graphs_and_halves_agree(bundles):
    """converter_f0 = speech_encoder + synthesis on the same window: the halves give the same audio."""
    from svc_runtime.pipeline.noise import NoiseStream
    from svc_runtime.pipeline.window import Controls, Window, run_windows

    bundle = bundles["fcpe"]
    roles = {g.role for g in bundle.manifest.graphs.values()}
    assert {"converter", "converter_f0", "synthesis", "speech_encoder", "pitch"} <= roles
    assert bundle.manifest.schema_version == 3
    entry = bundle.graph_entry("converter")
    assert [s.name for s in entry.outputs] == ["audio", "f0", "uv", "phase_out"]
    for spec in (entry.input("phase_in"), entry.outputs[-1]):  # int32 limbs [B, 3, H]
        assert (spec.dtype, spec.shape) == ("int32", ("batch", 3, bundle.manifest.model.n_harmonics))
    m = bundle.manifest.model
    frames = 120
    from svc_runtime.audio.resample import resample

    wav16k = resample(_tone(frames * HOP / SR), SR, 16000)
    noise = NoiseStream(7, 0, m.inter_channels, HOP, m.n_harmonics)
    speaker = np.zeros((frames, m.n_speakers), np.float32)
    speaker[:, 1] = 1.0
    f0 = np.where(np.arange(frames) % 40 < 30, 220.0, 0.0).astype(np.float32)
    controls = Controls.create(2.0, 0.4, m.ssl_dim)

    def window(**extra):
        return Window(wav16k=wav16k, start=0, frames=frames, noise=noise, phase_in=noise.initial_phase(),
                      state_frame=77, speaker=speaker, f0=f0, **extra)

    fused = run_windows(bundle, "converter_f0", [window()], controls)[0]
    units = bundle.encode_units(wav16k)[0]
    halves = run_windows(bundle, "synthesis", [window(units=units)], controls)[0]
    np.testing.assert_allclose(halves.audio, fused.audio, atol=1e-6)
    np.testing.assert_array_equal(halves.phase_out, fused.phase_out)
    np.testing.assert_allclose(fused.f0[f0 > 0], 220.0 * 2 ** (2 / 12), rtol=1e-6)
    np.testing.assert_array_equal(fused.uv, (f0 > 0).astype(np.float32))
    # the carried phase is the start phase of frame `state_frame`
    ref, _ = frame_start_phases(fused.f0[None], HOP, initial_phase=limbs_to_cycles(noise.initial_phase())[None])
    np.testing.assert_allclose(limbs_to_cycles(fused.phase_out), ref[0, 77], atol=1e-9)


def test_a_version_1_bundle_is_refused_with_a_re_export_hint(bundles, tmp_path):
    import shutil

    from svc_runtime import Bundle
    from svc_runtime.bundle.manifest import ManifestError

    folder = tmp_path / "old"
    shutil.copytree(bundles[None].path, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="version 1 bundle.*re-export"):
        Bundle.load(folder)
