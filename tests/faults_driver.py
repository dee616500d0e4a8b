"""`svc-run` in a subprocess with faults injected, for tests/test_faults_*.py.

Usage: python tests/faults_driver.py ARGS... ; the JSON in $SVC_FAULTS picks the faults:
  slow_run_s: sleep this long before every graph run (so a signal lands mid-file);
  converted_log: append the output path of every converted file to this file;
  address_space_headroom_mb: limit the address space (ulimit -v) to what the process
      uses once svc_runtime is imported plus this many MiB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main() -> None:
    faults = json.loads(os.environ.get("SVC_FAULTS", "{}"))
    import onnxruntime  # noqa: F401 - loaded before the limit is measured

    from svc_runtime.cli.app import main as cli_main
    from svc_runtime.pipeline import batch

    if faults.get("slow_run_s"):
        from onnxruntime.capi.onnxruntime_inference_collection import InferenceSession

        original_run = InferenceSession.run
        delay = float(faults["slow_run_s"])

        def slow_run(self, *args, **kwargs):
            time.sleep(delay)
            return original_run(self, *args, **kwargs)

        InferenceSession.run = slow_run
    if faults.get("converted_log"):
        log = Path(faults["converted_log"])
        original_write = batch.BatchRunner._write

        def logged_write(self, item, audio):
            result = original_write(self, item, audio)
            if result.status == "converted":
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(f"{item.job.target}\n")
            return result

        batch.BatchRunner._write = logged_write
    if faults.get("address_space_headroom_mb"):
        limit = _vm_size_bytes() + int(faults["address_space_headroom_mb"]) * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.argv = ["svc-run", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
