"""Where the processes of one machine keep their metrics (prometheus-client's multiprocess mode).

Kept apart from ``textback.metrics`` because it must run before prometheus-client is imported:
the library decides how to keep values when it is first imported, and worker processes inherit
that decision from the process that starts them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(folder: Path, *, wipe: bool) -> None:
    """Point this process (and the workers it starts) at the multiprocess folder.

    Call before prometheus-client is imported: it chooses how to keep values at import time.
    ``textback serve`` wipes the folder of an earlier run (as the library asks) before its
    workers start; ``textback worker`` joins the folder as it is.
    """
    if wipe:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
