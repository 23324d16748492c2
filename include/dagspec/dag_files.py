"""The loader files in a DAGs folder: K small .py files, each building one share of the definitions.

Airflow parses each DAG file in its own process, in parallel, with its own timeout (30 s by
default), so K files give K bounded units of work instead of one that grows with the folder. The
files hold nothing but their share number: no name, path or text from any definition.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_SHARES = 16
FOLDER = "_dagspec_loaders"  # not 'dagspec': Airflow puts the DAGs folder on sys.path, it would shadow the package
_NAME = re.compile(r"^dagspec_loader_(\d+)_of_(\d+)\.py$")
MARKER = "# dagspec loader file: written by `dagspec init`; do not edit."
LEGACY = "pipelines.py"  # the single loader of earlier versions: it would build every DAG a second time


def loader_name(share: int, shares: int) -> str:
    return f"dagspec_loader_{share:02d}_of_{shares:02d}.py"


def loader_path(dags_folder: Path, share: int, shares: int = DEFAULT_SHARES) -> Path:
    return dags_folder / FOLDER / loader_name(share, shares)


def loader_text(share: int, shares: int) -> str:
    return (
        f'"""dagspec: the definitions in definitions/ whose file name hashes to share {share} of {shares}.\n\n'
        "Each share is its own Airflow DAG file, parsed in its own process with its own timeout.\n"
        '"""\n'
        f"{MARKER}\n"
        "from pathlib import Path\n\n"
        "from dagspec.airflow.loader import load_dags\n\n"
        f'globals().update(load_dags(Path(__file__).resolve().parents[1] / "definitions", shard=({share}, {shares})))\n'
    )


def write_loaders(dags_folder: Path, shares: int = DEFAULT_SHARES) -> list[Path]:
    """Write the K loader files into <dags>/_dagspec_loaders/ (unchanged files keep their mtime) and remove
    loader files of another K, and the single loader of earlier versions."""
    if not 1 <= shares <= 256:
        raise ValueError(f"shares must be between 1 and 256, got {shares}")
    folder = dags_folder / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {loader_name(i, shares): loader_text(i, shares) for i in range(shares)}
    stale = [p for p in folder.glob("*.py") if p.name not in wanted and _NAME.match(p.name)]
    stale += [p for p in [dags_folder / LEGACY] if p.exists()]
    for path in stale:
        if _is_ours(path):
            path.unlink()
    written = []
    for name, text in wanted.items():
        target = folder / name
        if not (target.exists() and target.read_text() == text):
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, target)
        written.append(target)
    return written


def _is_ours(path: Path) -> bool:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return MARKER in text or "from dagspec.airflow.loader import load_dags" in text
