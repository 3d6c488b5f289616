"""Entry points: the DAG factory (Airflow) and the CLI (local and remote runs)."""
