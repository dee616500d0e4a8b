"""`python -m svc_train.training ...` (and `torchrun -m svc_train.training ...`) = `svc-train train ...`."""

import sys

from svc_runtime.cli.base import run
from svc_train.cli.app import app

if __name__ == "__main__":
    run(app, ["train", *sys.argv[1:]])
