"""The one layer that knows Airflow: definitions folder -> DAGs, tasks -> dagspec.runner.

The core never imports this package; the `dagspec` command uses its connection lookup (lazily).
"""
