"""Where loadgen's own files are: the repository it runs from (contracts, node modules, builds)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
