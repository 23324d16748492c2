"""dagspec: JSON definitions in, Airflow pipelines out.

The core (everything outside ``dagspec.airflow``) never imports Airflow, so it can be used
from the CLI, from tests and inside tasks without paying Airflow's import cost twice.
"""

__version__ = "0.1.0"
