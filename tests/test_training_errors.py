"""Training-side errors are not swallowed: a systematic feature failure stops the run instead of
excluding clips, a mostly-excluded dataset leaves the lists alone, CUDA asked for and missing is an error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch

from svc_train.data import feature_jobs
from svc_train.data.feature_jobs import FeatureJobError, drop_from_filelists, process_clip
from svc_train.data.features import FeatureError, FeatureSettings


@pytest.fixture()
def fake_worker(monkeypatch):
    """A worker slot whose extractor raises what each test sets (no network is loaded)."""
    settings = FeatureSettings(16000, 320, 1024, 1024, "vec768l12", "/nonexistent/encoder", "dio")
    worker = SimpleNamespace(settings=settings, error=None)

    def extract(samples):
        raise worker.error

    worker.extract = extract
    monkeypatch.setitem(feature_jobs._process_state, "extractor", worker)
    return worker


def clip(tmp_path: Path) -> Path:
    path = tmp_path / "spk" / "a.wav"
    path.parent.mkdir(parents=True)
    soundfile.write(path, 0.1 * np.ones(16000, np.float32), 16000)
    return path


def test_a_clip_problem_excludes_the_clip(tmp_path, fake_worker):
    fake_worker.error = FeatureError("silent (peak below -80 dBFS)")
    outcome = process_clip(clip(tmp_path))
    assert (outcome.status, outcome.reason) == ("excluded", "silent (peak below -80 dBFS)")


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), ValueError("shapes do not match"),
                                   OSError(28, "No space left on device")])
def test_a_systematic_error_stops_the_run_instead_of_excluding(tmp_path, fake_worker, error):
    fake_worker.error = error
    wav = clip(tmp_path)
    with pytest.raises(FeatureJobError, match=f"{wav}: {type(error).__name__}: .*not a problem of the clip's audio"):
        process_clip(wav)


def test_most_clips_excluded_stops_and_leaves_the_lists(tmp_path):
    wavs = [tmp_path / f"{i}.wav" for i in range(5)]
    lists = [tmp_path / "train.txt", tmp_path / "val.txt"]
    lists[0].write_text("".join(f"{w}\n" for w in wavs[:4]))
    lists[1].write_text(f"{wavs[4]}\n")
    excluded = {w: "sample rate 22050 Hz" for w in wavs[:3]}
    with pytest.raises(FeatureJobError, match="3 of 5 clips were excluded .*left unchanged"):
        drop_from_filelists(lists, excluded)
    assert lists[0].read_text() == "".join(f"{w}\n" for w in wavs[:4])
    assert not (tmp_path / "train.txt.excluded.tsv").exists()
    # two of five is a few bad clips: they are dropped, and a later run appends to the report
    assert drop_from_filelists(lists, {wavs[0]: "silent"}) == {lists[0]: 1, lists[1]: 0}
    assert drop_from_filelists(lists, {wavs[1]: "too short"}) == {lists[0]: 1, lists[1]: 0}
    assert lists[0].read_text() == f"{wavs[2]}\n{wavs[3]}\n"
    assert (tmp_path / "train.txt.excluded.tsv").read_text() == f"{wavs[0]}\tsilent\n{wavs[1]}\ttoo short\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a CUDA GPU")
def test_diffusion_training_refuses_a_missing_cuda_device():
    from svc_train.diffusion.trainer import _Process

    with pytest.raises(RuntimeError, match="cuda was asked for, but PyTorch sees no CUDA GPU"):
        _Process.join("cuda")
    assert _Process.join("cpu").device == torch.device("cpu")
