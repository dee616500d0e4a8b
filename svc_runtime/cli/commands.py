"""Imports every `svc-run` sub-command module so that each registers on the app."""
from svc_runtime.cli import convert_cmd  # noqa: E402,F401
from svc_runtime.cli import pitch_cmd  # noqa: E402,F401
from svc_runtime.cli import info_cmd  # noqa: E402,F401
