"""`python -m svc_train.training ...` (and `torchrun -m svc_train.training ...`) = `svc-train train ...`."""

import sys

from svc_train.cli import app

if __name__ == "__main__":
    sys.exit(app(["train", *sys.argv[1:]]))
