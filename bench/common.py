"""What every benchmark prints beside its numbers."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git_commit() -> str:
    """The short commit of this checkout; $BENCH_COMMIT where the copy has no git history (a lent machine)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("BENCH_COMMIT", "unknown")
