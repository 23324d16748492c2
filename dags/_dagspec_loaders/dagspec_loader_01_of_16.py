"""dagspec: the definitions in definitions/ whose file name hashes to share 1 of 16.

Each share is its own Airflow DAG file, parsed in its own process with its own timeout.
"""
# dagspec loader file: written by `dagspec init`; do not edit.
from pathlib import Path

from dagspec.airflow.loader import load_dags

globals().update(load_dags(Path(__file__).resolve().parents[1] / "definitions", shard=(1, 16)))
