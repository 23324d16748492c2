"""dagspec loader: every dags/definitions/*.json becomes one Airflow DAG.

Kept thin on purpose; the work happens in dagspec.airflow.loader. An invalid definition never
hides the others: it gets its own import error (see _definition_errors/).
"""

from pathlib import Path

from dagspec.airflow.loader import load_dags

globals().update(load_dags(Path(__file__).resolve().parent / "definitions"))
