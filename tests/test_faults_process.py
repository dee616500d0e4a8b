"""Faults that need a process of their own: SIGTERM / SIGINT mid-file, two workers on one output
folder, out of memory under an address-space limit (ulimit -v), a full tmpfs, stale leftovers.

`svc-run` runs through tests/faults_driver.py, which can slow every graph run down (so a signal
lands mid-file and two workers overlap) and log each converted output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from svc_runtime.atomic import remove_stale_temp_files
from svc_runtime.pipeline.outputs import claim_path, remove_stale_files, try_claim
from tests.pipeline_fixture import SR, small_bundle_dir, vibrato_tone

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "faults_driver.py"


def make_set(folder: Path, names: list[str], seconds: float = 0.8) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    audio, _ = vibrato_tone(seconds)
    for name in names:
        soundfile.write(folder / f"{name}.wav", audio, SR)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def command(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(DRIVER), "convert", str(inputs), "-m", str(small_bundle_dir()), "-o", str(out),
            "--speaker", "alice", "--f0-method", "pm", "--threads", "1", *extra]


def start(cmd: list[str], faults: dict, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, SVC_FAULTS=json.dumps(faults), PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kwargs)


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith((".part", ".claim"))]


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_file_abandons_it_cleanly_and_resume_finishes(tmp_path: Path, signum, code):
    inputs = tmp_path / "in"
    before = make_set(inputs, ["a", "b", "c", "d"])
    out = tmp_path / "out"
    small_bundle_dir()  # exported before the clock starts
    proc = start(command(inputs, out), {"slow_run_s": 0.4})
    wait_for(lambda: (out / "a.wav").is_file() or proc.poll() is not None)
    time.sleep(0.3)  # inside the next file's graph runs
    proc.send_signal(signum)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, text
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in text and "--skip-existing" in text and "Traceback" not in text
    done = sorted(p.name for p in out.glob("*.wav"))
    assert "a.wav" in done and len(done) < 4
    for wav in done:  # whatever was written is complete
        audio, sr = soundfile.read(out / wav)
        assert sr == SR and len(audio) == round(0.8 * SR)
    assert not leftovers(out)
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
    again = subprocess.run(command(inputs, out, "--skip-existing"), capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in out.glob("*.wav")) == ["a.wav", "b.wav", "c.wav", "d.wav"]


def test_sigterm_during_a_long_file_in_blocks_leaves_nothing(tmp_path: Path):
    """A file over `LONG_FILE_SECONDS` is written block by block into its temporary output while it converts;
    SIGTERM then abandons it: exit 143, no output, no temporary file, the input untouched."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    audio, _ = vibrato_tone(62.0)
    soundfile.write(inputs / "long.wav", audio, SR)
    before = (inputs / "long.wav").read_bytes()
    out = tmp_path / "out"
    small_bundle_dir()
    proc = start(command(inputs, out), {"slow_run_s": 0.5})
    wait_for(lambda: any(out.glob("*.part")) or proc.poll() is not None)  # the output being written in blocks
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, text
    assert "interrupted by SIGTERM" in text and "Traceback" not in text
    assert not list(out.glob("*.wav")) and not leftovers(out)
    assert (inputs / "long.wav").read_bytes() == before


def test_two_workers_never_convert_the_same_file(tmp_path: Path):
    inputs = tmp_path / "in"
    names = [f"f{i}" for i in range(16)]  # more than one worker's prefetch and group can claim at once
    make_set(inputs, names)
    out = tmp_path / "out"
    small_bundle_dir()
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = [start(command(inputs, out, "--skip-existing"), {"slow_run_s": 0.15, "converted_log": str(log)})
             for log in logs]
    texts = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], texts
    converted = [line for log in logs if log.exists() for line in log.read_text().splitlines()]
    assert sorted(Path(c).name for c in converted) == sorted(f"{n}.wav" for n in names)  # each exactly once
    assert all(log.exists() for log in logs), "both workers should have converted something"
    assert not leftovers(out)


def test_claims_of_dead_workers_are_taken_over(tmp_path: Path):
    target = tmp_path / "out" / "x.wav"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path;"
         "from svc_runtime.pipeline.outputs import try_claim;"
         f"c = try_claim(Path({str(target)!r})); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert holder.stdout.readline().strip() == "held"
    busy = try_claim(target)
    assert isinstance(busy, str) and f"pid {holder.pid}" in busy
    holder.kill()  # kill -9: no clean-up ran
    holder.wait()
    assert claim_path(target).exists()
    claim = try_claim(target)
    assert not isinstance(claim, str)
    claim.release()
    assert not claim_path(target).exists()


def test_stale_temp_and_claim_files_are_removed_at_start(tmp_path: Path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from svc_runtime.atomic import host_tag

    stale = out / "sub" / f".x.wav.{dead.stdout.strip()}-{host_tag()}.abcd1234.part"
    live = out / f".y.wav.{os.getpid()}-{host_tag()}.abcd1234.part"
    claim = out / ".z.wav.claim"
    user_file = out / ".notes.part.txt"
    for p in (stale, live, claim, user_file):
        p.write_bytes(b"x")
    assert remove_stale_files(out) == 2
    assert not stale.exists() and not claim.exists() and live.exists() and user_file.exists()
    assert remove_stale_temp_files(out) == []


def test_out_of_memory_under_an_address_space_limit_fails_only_that_file(tmp_path: Path):
    """A 40 s file in one 50 s window needs ~1 GB of graph activations at this bundle's size: under a limit
    of 600 MiB above start-up it runs out of memory in the graph, is retried with a 25 s window and batch 1,
    runs out again (in the graph, or in a host array of the retry when ONNX Runtime's arena still holds the
    first run's memory: both seen), and fails alone. (A header that lies about the length can no longer cause this: files
    declared longer than `LONG_FILE_SECONDS` are converted in blocks and nothing is sized from the header.)"""
    inputs = tmp_path / "in"
    make_set(inputs, ["a", "c"])
    audio, _ = vibrato_tone(40.0)
    soundfile.write(inputs / "b_big.wav", audio, SR)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    out = tmp_path / "out"
    proc = start(command(inputs, out, "--max-window", "50", "--batch-seconds", "60"), {"address_space_headroom_mb": 600})
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, text
    assert sorted(p.name for p in out.glob("*.wav")) == ["a.wav", "c.wav"]
    flat = " ".join(text.split())
    assert re.search(r"b_big\.wav: out of memory in (converter_f0|the pipeline) \(.*also with a 25 s window and "
                     r"batch 1\)", flat), flat
    assert "Traceback" not in text
    assert not leftovers(out)
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_a_really_full_disk_stops_the_batch(tmp_path: Path):
    if shutil.which("unshare") is None or sys.platform != "linux":
        pytest.skip("needs unshare (Linux) to mount a private tmpfs")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    inputs = tmp_path / "in"
    before = make_set(inputs, ["a", "b", "c"])
    out = tmp_path / "full"
    out.mkdir()
    # 0.8 s of 16-bit 44.1 kHz audio is ~70 kB: the first output fits in 100 kB, the second does not
    cmd = " ".join(f"'{c}'" for c in command(inputs, out))
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=100k tmpfs {out} && {cmd}; "
                           f"code=$?; ls -a {out}; exit $code"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    flat = " ".join(text.split())
    assert "no space left on device" in flat and "stopped" in flat and "not attempted" in flat, text
    assert "Exception ignored" not in text and "Traceback" not in text
    listing = proc.stdout.split()
    assert not [n for n in listing if n.endswith((".part", ".claim"))], listing
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
