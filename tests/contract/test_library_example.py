"""The contract example in docs/library.md runs with pytest, as a reader would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "docs" / "library.md"


def contract_example() -> str:
    """The ```py block of the 'Proving your own adapter' section."""
    text = LIBRARY.read_text(encoding="utf-8")
    section = re.search(r"^## Proving your own adapter$(.*?)^## ", text, re.M | re.S)
    assert section, "docs/library.md has no 'Proving your own adapter' section"
    blocks = re.findall(r"^```py\n(.*?)^```$", section.group(1), re.M | re.S)
    assert len(blocks) == 1
    return str(blocks[0])


def test_the_documented_object_store_passes_the_shipped_contract(tmp_path: Path) -> None:
    """Saved as the page says and run with pytest in an empty folder: every test passes."""
    (tmp_path / "test_bucket_store.py").write_text(contract_example(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bucket_store.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed, done.stdout
    assert int(passed.group(1)) == 13
    assert "failed" not in done.stdout
