"""Carry onnxruntime-gpu (and the few wheels the device check needs) to a GPU machine that has no network.

Here (PyPI reachable):

    python scripts/gpu_wheel.py fetch [DIST ...]   # pip download into .gpu_wheel/ (git-ignored), tar, split, print the calls

fetch downloads the wheels for the device machine (CPython 3.12, manylinux x86_64; `--python-version`,
`--platform` to change), packs them into one tar, splits it into parts of at most `--part-mib` MiB
(`.gpu_wheel/part01`, ...) plus `.gpu_wheel/manifest.json` (sha256 of the tar and of every part), and
prints one command per device call: each call carries one part and moves it out of the working tree
into /tmp/svc_gpu (kept while the lease stays warm); the last call also joins, checks and installs
them into a private folder and runs the device check (docs/gpu.md). On the device machine, first

    python scripts/gpu_wheel.py probe

lists what it lacks (fetch only those), and after the parts arrived

    python scripts/gpu_wheel.py install --parts /tmp/svc_gpu --target /tmp/svc_gpu/site

joins the parts, checks every sha256, and `pip install --no-deps --target` the wheels, so the
machine's own packages stay untouched; `PYTHONPATH=/tmp/svc_gpu/site` then puts them first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / ".gpu_wheel"
STAGE = "/tmp/svc_gpu"
GPU_WHEEL = "onnxruntime-gpu==1.31.1"
"""The CUDA 13 build for CPython 3.12 (the device machine has only the CPU onnxruntime)."""
NEEDS = {  # distribution -> module the device check imports (svc_runtime, and svc_train / svc_export to build the model)
    "soxr": "soxr", "soundfile": "soundfile", "torchfcpe": "torchfcpe", "pyyaml": "yaml", "librosa": "librosa",
    "lazy_loader": "lazy_loader", "audioread": "audioread", "pooch": "pooch", "platformdirs": "platformdirs",
    "msgpack": "msgpack", "decorator": "decorator", "joblib": "joblib", "threadpoolctl": "threadpoolctl",
    "scipy": "scipy", "scikit-learn": "sklearn", "numba": "numba", "llvmlite": "llvmlite",
}
"""What `benchmarks.device_check` imports beyond torch, numpy and onnx (measured: its modules after a CPU run).
torchfcpe is never imported (its import needs torchaudio): the exporter reads its weight file."""
WHEELS = (GPU_WHEEL, *NEEDS)
CHECK = "python -m benchmarks.device_check --provider cuda --out $OUT/device_check --size standard"
WORK = f"{STAGE}/model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split(files: list[Path], folder: Path, part_bytes: int) -> dict:
    """Tar `files`, cut the tar into `folder/partNN` of at most `part_bytes`, write `folder/manifest.json`."""
    tar = folder / "wheels.tar"
    with tarfile.open(tar, "w") as out:
        for path in files:
            out.add(path, arcname=path.name)
    parts = []
    with tar.open("rb") as f:
        for number, block in enumerate(iter(lambda: f.read(part_bytes), b""), start=1):
            part = folder / f"part{number:02d}"
            part.write_bytes(block)
            parts.append({"file": part.name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    manifest = {"tar_sha256": _sha256(tar), "tar_bytes": tar.stat().st_size, "parts": parts,
                "wheels": [path.name for path in files]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    tar.unlink()
    return manifest


def join(parts_dir: Path) -> list[Path]:
    """Join `parts_dir/partNN` (each checked against manifest.json), unpack the tar; the unpacked files."""
    manifest = json.loads((parts_dir / "manifest.json").read_text())
    tar = parts_dir / "wheels.tar"
    with tar.open("wb") as out:
        for part in manifest["parts"]:
            path = parts_dir / part["file"]
            if not path.is_file():
                raise SystemExit(f"{path}: part missing; carry it in its own call first (scripts/gpu_wheel.py fetch lists them)")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise SystemExit(f"{path}: sha256 differs from manifest.json; carry this part again")
            out.write(data)
    if _sha256(tar) != manifest["tar_sha256"]:
        raise SystemExit(f"{tar}: joined sha256 differs from manifest.json; carry the parts again")
    unpacked = parts_dir / "wheels"
    with tarfile.open(tar) as t:
        t.extractall(unpacked, filter="data")
    tar.unlink()
    return [unpacked / name for name in manifest["wheels"]]


def fetch(args: argparse.Namespace) -> None:
    wheels = FOLDER / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)  # only this fetch's wheels go into the parts
    wheels.mkdir(parents=True)
    for old in FOLDER.glob("part*"):
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(wheels),
           "--python-version", args.python_version, "--implementation", "cp"]
    for platform in args.platform:
        cmd += ["--platform", platform]
    subprocess.run(cmd + list(args.wheels), check=True)
    manifest = split(sorted(wheels.glob("*.whl")), FOLDER, args.part_mib << 20)
    parts = manifest["parts"]
    print(f"{len(parts)} parts of <= {args.part_mib} MiB in {FOLDER.relative_to(ROOT)}: {', '.join(manifest['wheels'])}")
    print("device calls, in order, on one warm lease (run tool: carry, command):")
    for k, part in enumerate(parts, start=1):
        carry = [f".gpu_wheel/{part['file']}"] + ([".gpu_wheel/manifest.json"] if k == 1 else [])
        move = f"mkdir -p {STAGE} && mv .gpu_wheel/part* .gpu_wheel/manifest.json {STAGE}/ 2>/dev/null; ls {STAGE}"
        if k == len(parts):
            move += (f" && python scripts/gpu_wheel.py install --parts {STAGE} --target {STAGE}/site"
                     f" && PYTHONPATH={STAGE}/site {CHECK} --work {WORK} --build-only")
        print(f"  call {k}: carry={json.dumps(carry)}\n          command: {move}")
    print(f"  call {len(parts) + 1}: carry=[]\n          command: PYTHONPATH={STAGE}/site {CHECK} --work {WORK}")


def probe(args: argparse.Namespace) -> None:
    """On the device machine: which of the wheels it lacks (the `fetch` arguments to use here)."""
    import importlib.util

    missing = [dist for dist, module in NEEDS.items() if importlib.util.find_spec(module) is None]
    try:
        import onnxruntime

        has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        missing.insert(0, GPU_WHEEL)
    print("missing:", " ".join(missing) or "nothing")
    print("fetch here with: python scripts/gpu_wheel.py fetch " + " ".join(missing))


def install(args: argparse.Namespace) -> None:
    wheels = join(Path(args.parts))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", args.target,
                    *(str(w) for w in wheels)], check=True)
    print(f"installed {', '.join(w.name for w in wheels)} into {args.target}; run with PYTHONPATH={args.target}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and split the wheels (here)")
    f.add_argument("--part-mib", type=int, default=60)
    f.add_argument("--python-version", default="3.12")
    f.add_argument("--platform", action="append", default=None,
                   help="pip --platform tags (default: manylinux_2_28_x86_64, manylinux_2_17_x86_64)")
    f.add_argument("wheels", nargs="*", default=list(WHEELS))
    sub.add_parser("probe", help="list the wheels the device machine lacks (on the device machine)")
    i = sub.add_parser("install", help="join, check and install the parts (on the device machine)")
    i.add_argument("--parts", default=STAGE)
    i.add_argument("--target", default=f"{STAGE}/site")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        args.platform = args.platform or ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
        args.wheels = args.wheels or list(WHEELS)
        fetch(args)
    elif args.command == "probe":
        probe(args)
    else:
        install(args)


if __name__ == "__main__":
    main()
