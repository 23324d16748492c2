"""The one layer that knows Airflow: definitions folder -> DAGs, tasks -> dagspec.runner.

Nothing in the rest of dagspec imports this package.
"""
