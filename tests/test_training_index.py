"""Retrieval index, cluster model, checkpoint mixing and compress: the files svc-run and so-vits-svc read."""

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from svc_runtime.pipeline.retrieval import ClusterCentres, FeatureIndex
from svc_train import load_generator
from svc_train.cli import app
from svc_train.data.config_builder import DatasetSplit, build_config, write_config, write_filelist
from svc_train.data.features import FeatureSettings, FileFeatures, save_features
from svc_train.index import build_index, mix_checkpoints

DIM = 16
FIXTURE = Path(__file__).parent / "fixtures" / "sovits41_small"


def _blobs(rng, n_blobs: int, per_blob: int, offset: float):
    means = rng.normal(offset, 3.0, size=(n_blobs, DIM)).astype(np.float32)
    frames = np.concatenate([m + 0.05 * rng.standard_normal((per_blob, DIM)).astype(np.float32) for m in means])
    return means, frames[rng.permutation(frames.shape[0])]


@pytest.fixture
def dataset(tmp_path):
    """Two speakers, three clips each, with feature caches holding known unit blobs."""
    rng = np.random.default_rng(0)
    settings = FeatureSettings(44100, 512, 2048, 2048, "vec256l9", "/nonexistent/encoder.pt", "dio")
    clips, means = {}, {}
    for speaker, offset in (("ann", -5.0), ("ben", 5.0)):
        means[speaker], frames = _blobs(rng, 8, 30, offset)  # 240 frames per speaker
        (tmp_path / "data" / speaker).mkdir(parents=True)
        clips[speaker] = []
        for k, part in enumerate(np.array_split(frames, 3)):
            wav = tmp_path / "data" / speaker / f"{k}.wav"
            soundfile.write(wav, np.zeros(512 * 10, np.float32), 44100)
            t = 10
            save_features(wav, FileFeatures(part.T.copy(), *(np.ones(t, np.float32),) * 3,
                                            np.ones((1025, t), np.float32)), settings)
            clips[speaker].append(wav.resolve())
    split = DatasetSplit({"ann": 0, "ben": 1}, clips["ann"][:2] + clips["ben"][:2], [clips["ann"][2], clips["ben"][2]])
    train_list, val_list = tmp_path / "lists" / "train.txt", tmp_path / "lists" / "val.txt"
    write_filelist(train_list, split.train)
    write_filelist(val_list, split.val)
    config = tmp_path / "config.json"
    write_config(config, build_config(split, train_list, val_list, size="tiny", speech_encoder="vec256l9", units_dim=DIM))
    return config, means


def test_index_cli_per_speaker_faiss_files_the_runtime_reads(dataset, tmp_path):
    config, _ = dataset
    result = CliRunner().invoke(app, ["index", "-c", str(config), "-o", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert [(s["speaker"], s["speaker_id"], s["vectors"], s["dim"]) for s in manifest["speakers"]] == [
        ("ann", 0, 240, DIM), ("ben", 1, 240, DIM)]
    # n_lists = min(16 sqrt(240), 240 // 39) = 6, as so-vits-svc / RVC
    assert manifest["speakers"][0]["n_lists"] == 6
    index = FeatureIndex(tmp_path / "idx" / "ann.index", DIM)  # svc-run's loader
    stored = index.vectors
    distance, ids = index.index.search(stored[:5], 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(5))
    assert float(distance.max()) == 0.0


def test_large_sets_are_reduced_to_kmeans_centres():
    rng = np.random.default_rng(1)
    _, frames = _blobs(rng, 4, 100, 0.0)
    index, n_lists = build_index(frames, kmeans_above=200, kmeans_centres_count=20)
    assert index.ntotal == 20 and n_lists == 1  # 20 // 39 = 0 lists, clamped to 1
    assert isinstance(faiss.downcast_index(index), faiss.IndexIVFFlat)


def test_cluster_cli_finds_the_blobs(dataset, tmp_path):
    config, means = dataset
    result = CliRunner().invoke(app, ["cluster", "-c", str(config), "-o", str(tmp_path / "km"), "--n-clusters", "8"])
    assert result.exit_code == 0, result.output
    for speaker in ("ann", "ben"):
        centres = ClusterCentres(tmp_path / "km" / f"{speaker}.centers.npy", DIM).centres
        assert centres.shape == (8, DIM)
        # every true blob mean has a centre right next to it
        gaps = np.linalg.norm(means[speaker][:, None, :] - centres[None], axis=-1).min(axis=1)
        assert gaps.max() < 0.1, gaps
    # so-vits-svc's layout (our own file, just written: safe to unpickle its numpy arrays)
    reference = torch.load(tmp_path / "km" / "kmeans_8.pt", weights_only=False)
    assert set(reference) == {"ann", "ben"}
    assert set(reference["ann"]) == {"n_features_in_", "_n_threads", "cluster_centers_"}
    assert reference["ann"]["n_features_in_"] == DIM and reference["ann"]["cluster_centers_"].shape == (8, DIM)


def test_index_without_features_names_the_missing_cache(dataset, tmp_path):
    config, _ = dataset
    for cache in (tmp_path / "data" / "ben").glob("*.features.npz"):
        cache.unlink()
    result = CliRunner().invoke(app, ["index", "-c", str(config), "-o", str(tmp_path / "idx")])
    assert result.exit_code != 0
    assert "no cached features" in result.output.replace("\n", "")


def _checkpoint(path: Path, scale: float, shape=(2, 3)) -> Path:
    state = {"emb_g.weight": torch.full(shape, scale), "dec.conv.weight_g": torch.full((2, 1, 1), 2 * scale),
             "steps": torch.tensor([7])}
    torch.save({"model": state, "iteration": 5, "optimizer": None, "learning_rate": 1e-4}, path)
    return path


def test_mix_linear_softmax_and_mismatch(tmp_path):
    a, b = _checkpoint(tmp_path / "a.pth", 1.0), _checkpoint(tmp_path / "b.pth", 3.0)
    out = tmp_path / "mix.pth"
    result = CliRunner().invoke(app, ["mix", str(a), str(b), "-w", "3", "-w", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    mixed = torch.load(out, weights_only=True)
    torch.testing.assert_close(mixed["model"]["emb_g.weight"], torch.full((2, 3), 0.75 * 1 + 0.25 * 3))
    torch.testing.assert_close(mixed["model"]["dec.conv.weight_g"], torch.full((2, 1, 1), 3.0))
    assert mixed["model"]["steps"].tolist() == [7] and mixed["optimizer"] is None and mixed["iteration"] == 5
    soft = mix_checkpoints([a, b], [50, 50], "softmax")  # so-vits-svc mode 0: softmax(rates / 100)
    torch.testing.assert_close(soft["model"]["emb_g.weight"], torch.full((2, 3), 2.0))
    c = _checkpoint(tmp_path / "c.pth", 1.0, shape=(4, 3))
    result = CliRunner().invoke(app, ["mix", str(a), str(c), "-w", "1", "-w", "1", "-o", str(out)])
    assert result.exit_code != 0 and "emb_g.weight" in result.output.replace("\n", "")


def test_compress_strips_optimizer_and_posterior_encoder(tmp_path):
    g = tmp_path / "G_1.pth"
    result = CliRunner().invoke(app, ["init", "-c", str(FIXTURE / "config.json"), "-o", str(g)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["compress", str(g), "--half"])
    assert result.exit_code == 0, result.output
    release = tmp_path / "G_1_release_half.pth"
    data = torch.load(release, weights_only=True)
    assert data["optimizer"] is None and not any(k.startswith("enc_q.") for k in data["model"])
    assert {v.dtype for v in data["model"].values() if v.is_floating_point()} == {torch.float16}
    assert release.stat().st_size < g.stat().st_size / 2
    load_generator(release, FIXTURE / "config.json")
