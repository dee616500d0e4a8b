"""Write a bundle folder atomically: stage everything in a temporary sibling folder,
write `manifest.json` last, then swap it into place.

A re-export into an existing bundle replaces it in two renames (old -> backup,
staged -> target) and only then deletes the backup; a failed export leaves the
old bundle untouched and removes its staging folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from svc_runtime.bundle.bundle import sha256_of, verify_files
from svc_runtime.bundle.manifest import MANIFEST_NAME, Manifest


class BundleTargetError(ValueError):
    """The output folder cannot receive a bundle (not empty and not a bundle, or not a folder)."""


def check_target(target: Path) -> None:
    """Refuse to replace anything that is not an earlier bundle (or an empty folder)."""
    if target.exists() and not target.is_dir():
        raise BundleTargetError(f"{target}: exists and is not a folder; choose another -o BUNDLE_DIR")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise BundleTargetError(
            f"{target}: folder is not empty and holds no {MANIFEST_NAME}; svc-export only replaces an "
            "earlier bundle. Choose an empty or new -o BUNDLE_DIR"
        )
    if not target.parent.exists():
        raise BundleTargetError(f"{target.parent}: parent folder of -o does not exist")


class BundleStaging:
    """A temporary folder next to `target` that becomes the bundle on `commit`.

    Use as a context manager; leaving the block without `commit` removes the staging folder.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target).resolve()
        self.path: Path | None = None
        self.committed = False

    def __enter__(self) -> "BundleStaging":
        check_target(self.target)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.staging-", dir=self.target.parent))
        os.chmod(self.path, 0o755)  # mkdtemp makes it private; a bundle is an ordinary folder
        return self

    def __exit__(self, *exc_info) -> None:
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)

    def file(self, name: str) -> Path:
        """Path of file `name` inside the staging folder."""
        assert self.path is not None, "use BundleStaging as a context manager"
        return self.path / name

    def copy_in(self, source: Path, name: str) -> str:
        """Copy `source` into the bundle as `name`; returns its sha256."""
        destination = self.file(name)
        shutil.copyfile(source, destination)
        return sha256_of(destination)

    def commit(self, manifest: Manifest) -> Path:
        """Write the manifest, verify every listed file, and move the bundle into place."""
        assert self.path is not None, "use BundleStaging as a context manager"
        listed = {name for _, name, _ in manifest.files()}
        stray = sorted(p.name for p in self.path.iterdir() if p.name not in listed)
        for name in stray:  # intermediate files (e.g. a timing cache) do not travel
            path = self.path / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        manifest.write(self.path)
        Manifest.read(self.path)  # the written file parses back
        verify_files(self.path, manifest)
        backup = None
        if self.target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            backup.rmdir()
            self.target.rename(backup)
        try:
            self.path.rename(self.target)
        except OSError:
            if backup is not None:
                backup.rename(self.target)
            raise
        self.path = None
        self.committed = True
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        return self.target
