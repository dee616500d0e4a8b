"""The runtime must stay lean: importing it (and its CLI) loads neither torch nor librosa."""

import subprocess
import sys

CHECK = """
import sys
import svc_runtime
import svc_runtime.cli
for name in ("torch", "librosa"):
    assert name not in sys.modules, f"importing svc_runtime loaded {name}"
print("lean")
"""


def test_runtime_import_does_not_load_torch_or_librosa():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lean"
