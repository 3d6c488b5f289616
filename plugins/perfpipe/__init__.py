"""perfpipe: k6 performance tests driven by Airflow, gated on results stored in InfluxDB.

Keep this module import-light: DAG files import the package at parse time.
"""

TEST_TYPES = ("smoke", "load", "stress", "spike", "soak", "chaos")

__version__ = "0.1.0"
