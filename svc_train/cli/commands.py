"""Imports every `svc-train` sub-command module so that each registers on the app."""
from svc_train.cli import slice as _slice  # noqa: E402,F401
from svc_train.cli import resample as _resample  # noqa: E402,F401
from svc_train.cli import config as _config  # noqa: E402,F401
from svc_train.cli import features as _features  # noqa: E402,F401
from svc_train.cli import diffusion_cmd as _diffusion  # noqa: E402,F401
from svc_train.cli import train as _train  # noqa: E402,F401
from svc_train.cli import init_cmd as _init  # noqa: E402,F401
from svc_train.cli import index as _index  # noqa: E402,F401
from svc_train.cli import cluster as _cluster  # noqa: E402,F401
from svc_train.cli import mix as _mix  # noqa: E402,F401
from svc_train.cli import compress as _compress  # noqa: E402,F401
