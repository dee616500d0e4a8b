"""The `svc-train` application: every sub-command registered here, explicitly, in workflow order."""

from __future__ import annotations

from svc_runtime.cli.base import new_app, register, run
from svc_train.cli import (
    cluster,
    compress,
    config,
    diffusion_cmd,
    features,
    index,
    init_cmd,
    mix,
    resample,
    slice_cmd,
    train,
)

app = new_app("svc-train", "Prepare data, train a so-vits-svc 4.1 voice, and manage checkpoints.")
register(app, slice_cmd.slice_command, "slice")
register(app, resample.resample_command, "resample")
register(app, config.config_command, "config")
register(app, features.features_command, "features")
register(app, train.train_command, "train")
register(app, diffusion_cmd.diffusion_command, "diffusion")
register(app, init_cmd.init_command, "init")
register(app, index.index_command, "index")
register(app, cluster.cluster_command, "cluster")
register(app, mix.mix_command, "mix")
register(app, compress.compress_command, "compress")


def main() -> None:
    run(app)
