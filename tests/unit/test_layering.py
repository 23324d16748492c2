"""The core never imports Airflow (and DAG parsing never imports the heavy stage libraries)."""

import subprocess
import sys

CORE = ["dagspec.spec", "dagspec.runner", "dagspec.stages.extract", "dagspec.stages.validate",
        "dagspec.stages.transform", "dagspec.stages.publish", "dagspec.store", "dagspec.cli", "dagspec.sample_data"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_core_does_not_import_airflow():
    loaded = _modules_after("\n".join(f"import {m}" for m in CORE))
    assert not {m for m in loaded if m == "airflow" or m.startswith("airflow.")}


def test_building_dags_does_not_import_gx_duckdb_or_sqlalchemy_engines():
    loaded = _modules_after(
        "from pathlib import Path\nfrom dagspec.airflow.loader import load_dags\n"
        "load_dags(Path('dags/definitions'), write_stubs=False)"
    )
    assert "airflow" in loaded
    for heavy in ("great_expectations", "duckdb", "pandas.io.sql"):
        assert heavy not in loaded, heavy
