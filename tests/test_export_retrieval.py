"""--index / --cluster inputs split into one file per speaker, read without running code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from svc_export.retrieval_files import AuxFileError, prepare_aux_files  # noqa: E402

SPEAKERS = {"alice": 0, "bob": 1}


def test_svc_train_index_folder_and_cluster_files(tmp_path):
    pytest.importorskip("faiss")
    from svc_train.index import write_cluster_model, write_indexes

    rng = np.random.default_rng(0)
    units = {name: rng.standard_normal((120, 16)).astype(np.float32) for name in SPEAKERS}
    write_indexes(units, SPEAKERS, tmp_path / "index")
    write_cluster_model(units, tmp_path / "cluster", n_clusters=4)
    payloads = prepare_aux_files((str(tmp_path / "index"),), (str(tmp_path / "cluster" / "kmeans_4.pt"),),
                                 SPEAKERS, 16)
    names = {(p.kind, p.speaker): p.name for p in payloads}
    assert names == {("index", "alice"): "index_0_alice.index", ("index", "bob"): "index_1_bob.index",
                     ("cluster", "alice"): "cluster_0_alice.npy", ("cluster", "bob"): "cluster_1_bob.npy"}
    index = next(p for p in payloads if p.kind == "index" and p.speaker == "bob")
    assert index.source == tmp_path / "index" / "bob.index"
    centres = next(p for p in payloads if p.kind == "cluster" and p.speaker == "bob")
    import io

    saved = np.load(io.BytesIO(centres.data))
    assert np.array_equal(saved, np.load(tmp_path / "cluster" / "bob.centers.npy"))


def test_sovits_index_pickle_is_split_into_faiss_files(tmp_path):
    faiss = pytest.importorskip("faiss")
    indexes = {}
    for name in SPEAKERS:
        index = faiss.IndexFlatL2(8)
        index.add(np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32))
        indexes[name] = index
    path = tmp_path / "feature_and_index.pkl"
    path.write_bytes(pickle.dumps(indexes))
    payloads = prepare_aux_files((str(path),), (), SPEAKERS, 8)
    restored = faiss.deserialize_index(np.frombuffer(payloads[1].data, dtype=np.uint8))
    assert (payloads[1].speaker, restored.d, restored.ntotal) == ("bob", 8, 5)
    with pytest.raises(AuxFileError, match="index vectors have 8 dimensions, the model's units 16"):
        prepare_aux_files((str(path),), (), SPEAKERS, 16)


def test_single_files_need_a_speaker_and_the_right_shape(tmp_path):
    centres = tmp_path / "c.npz"
    np.savez(centres, centers=np.zeros((4, 8), np.float32))
    [payload] = prepare_aux_files((), (f"bob={centres}",), SPEAKERS, 8)
    assert (payload.name, payload.format, payload.source) == ("cluster_1_bob.npz", "npz", centres)
    with pytest.raises(AuxFileError, match="say whose file it is"):
        prepare_aux_files((), (str(centres),), SPEAKERS, 8)
    assert prepare_aux_files((), (str(centres),), {"solo": 0}, 8)[0].speaker == "solo"
    with pytest.raises(AuxFileError, match=r"float \[K, 9\] array"):
        prepare_aux_files((), (f"bob={centres}",), SPEAKERS, 9)
    with pytest.raises(AuxFileError, match="two cluster files for speaker 'bob'"):
        prepare_aux_files((), (f"bob={centres}", f"bob={centres}"), SPEAKERS, 8)


def test_pickles_that_name_other_globals_are_refused(tmp_path):
    path = tmp_path / "feature_and_index.pkl"
    path.write_bytes(b"cposix\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(AuxFileError, match="refusing to unpickle global 'posix.system'"):
        prepare_aux_files((str(path),), (), SPEAKERS, 8)
