"""The one golden-file check: outputs compared byte for byte with the files of tests/data/<case>/.

``REGEN_GOLDEN=1`` (the one switch) writes the outputs first, so the test passes and ``git diff tests/data/``
shows what changed; a golden file changes only with a commit that says which output changed and why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REGENERATE = os.environ.get("REGEN_GOLDEN") == "1"


def assert_golden(folder: Path, outputs: Mapping[str, str]) -> None:
    """Each ``outputs[name]`` equals ``folder/name`` (an input kept beside its outputs is passed like one)."""
    if REGENERATE:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in outputs.items():
            (folder / name).write_text(content, encoding="utf-8")
    for name, content in outputs.items():
        path = folder / name
        assert path.exists(), f"{path} is missing; REGEN_GOLDEN=1 writes it"
        assert content == path.read_text(encoding="utf-8"), f"{path} differs; REGEN_GOLDEN=1 rewrites it after an intended change"
