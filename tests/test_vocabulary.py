"""One home for shared vocabulary: every reader of `unit_interpolate_mode` accepts exactly so-vits-svc 4.1's
values, and the dataclass schema reader gives errors that name the file and the field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
import pytest

from svc_runtime import vocabulary
from svc_runtime.schema import SchemaError, read_dataclass, to_mapping
from svc_runtime.signal.units import align_units
from svc_train.config import ConfigError, SvcConfig
from svc_train.diffusion.config import DiffusionConfig, DiffusionConfigError


@pytest.fixture()
def raw_config(fixtures_dir):
    return json.loads((fixtures_dir / "sovits41_small" / "config.json").read_text())


def test_linear_unit_mode_is_refused_at_config_load(raw_config, tmp_path):
    """The drift bug: "linear" passed config load, then failed at dataset load and at conversion."""
    raw_config["data"]["unit_interpolate_mode"] = "linear"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw_config))
    with pytest.raises(ConfigError, match=r"data.unit_interpolate_mode must be one of left, nearest, got \"linear\""):
        SvcConfig.load(path)
    with pytest.raises(DiffusionConfigError, match="data.unit_interpolate_mode must be one of left, nearest"):
        DiffusionConfig.from_dict({"data": {"unit_interpolate_mode": "linear"}}, source="diffusion.yaml")


@pytest.mark.parametrize("mode", vocabulary.UNIT_INTERPOLATE_MODES)
def test_every_mode_a_config_accepts_aligns_units(raw_config, mode):
    raw_config["data"]["unit_interpolate_mode"] = mode
    config = SvcConfig.from_dict(raw_config)
    assert DiffusionConfig.from_dict({"data": {"unit_interpolate_mode": mode}}).data.unit_interpolate_mode == mode
    units = np.arange(6, dtype=np.float32).reshape(1, 6)
    aligned = align_units(units, 15, config.data.unit_interpolate_mode)
    assert aligned.shape == (1, 15)
    assert set(aligned[0].tolist()) == set(range(6))  # every source frame is used, in order
    assert np.all(np.diff(aligned[0]) >= 0)


def test_unit_modes_are_so_vits_svc_41s_only():
    assert vocabulary.UNIT_INTERPOLATE_MODES == ("left", "nearest")
    with pytest.raises(ValueError, match="unknown unit_interpolate_mode 'linear'"):
        align_units(np.zeros((2, 3), np.float32), 5, "linear")


def test_config_and_manifest_unit_modes_agree():
    from svc_runtime.bundle import manifest

    assert set(manifest.UNIT_INTERPOLATE_MODES) == set(vocabulary.UNIT_INTERPOLATE_MODES)


def test_shared_constants_are_imported_not_restated():
    from svc_runtime.pipeline.options import ConvertOptions
    from svc_runtime.signal import f0

    assert ConvertOptions().seed == vocabulary.DEFAULT_SEED == 52468
    assert (f0.F0_MIN_HZ, f0.F0_MAX_HZ) == (vocabulary.F0_MIN_HZ, vocabulary.F0_MAX_HZ) == (50.0, 1100.0)
    defaults = DiffusionConfig().data
    assert (defaults.encoder_sample_rate, defaults.encoder_hop_size) == (16000, 320)


@dataclass(frozen=True)
class _Inner:
    rate: int
    mode: Literal["left", "nearest"] = "left"


@dataclass(frozen=True)
class _Outer:
    inner: _Inner
    betas: tuple[float, float]
    sizes: tuple[int, ...] = ()
    fmax: Optional[float] = None
    names: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def test_schema_reads_nested_typed_sections_and_keeps_unknown_keys():
    raw = {"inner": {"rate": 16000, "mode": "nearest"}, "betas": [0.8, 1], "sizes": [3, 7], "fmax": None,
           "names": ["a"], "note": "kept"}
    value = read_dataclass(_Outer, raw, "cfg.json")
    assert value == _Outer(_Inner(16000, "nearest"), (0.8, 1), (3, 7), None, ["a"], {"note": "kept"})
    assert to_mapping(value) == raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inner": {"rate": 1.5}}, r"cfg.json: inner.rate must be an integer, got 1.5 \(float\)"),
        ({"inner": {"rate": True}}, "inner.rate must be an integer, got true"),
        ({"inner": {"rate": 1, "mode": "linear"}}, 'inner.mode must be one of left, nearest, got "linear"'),
        ({"inner": {}}, r"cfg.json: missing inner.rate \(required; expected an integer\)"),
        ({"betas": [0.8]}, "betas must have 2 entries, got 1"),
        ({"sizes": [1, "2"]}, r"sizes\[1\] must be an integer"),
        ({"inner": 3}, "inner must be a mapping, got int"),
    ],
)
def test_schema_errors_name_file_and_field(change, message):
    raw = {"inner": {"rate": 1}, "betas": [0.8, 0.99], **change}
    with pytest.raises(SchemaError, match=message):
        read_dataclass(_Outer, raw, "cfg.json")


def test_the_manifests_diffusion_section_is_typed():
    from svc_runtime.diffusion.spec import DiffusionSpec, DiffusionSpecError, VocoderSpec

    vocoder = VocoderSpec(44100, 512, 128, 2048, 2048, 40.0, 16000.0)
    section = {"vocoder": vocoder.to_dict(), "timesteps": 1000, "k_step_max": 100, "max_beta": 0.02,
               "spec_min": -12.0, "spec_max": 2.0, "unit_channels": 768, "hidden": 256, "n_spk": 1,
               "sampling_rate": 44100, "hop_size": 512, "method": "dpm-solver++", "speedup": 10,
               "speakers": {"alice": 0}}
    spec = DiffusionSpec.from_dict(section, "manifest.json")
    assert spec.vocoder == vocoder and spec.speakers == {"alice": 0}
    assert DiffusionSpec.from_dict(spec.to_dict(), "manifest.json") == spec
    with pytest.raises(DiffusionSpecError, match=r'manifest.json: timesteps must be an integer, got "1000"'):
        DiffusionSpec.from_dict({**section, "timesteps": "1000"}, "manifest.json")
    with pytest.raises(DiffusionSpecError, match="manifest.json: missing vocoder.hop_size"):
        no_hop = {k: v for k, v in vocoder.to_dict().items() if k != "hop_size"}
        DiffusionSpec.from_dict({**section, "vocoder": no_hop}, "manifest.json")
