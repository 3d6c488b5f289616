"""perfpipe demo system: a JSON shop API (several worker processes) with a Redis cache, PostgreSQL storage and a
TCP fault proxy on the API->PostgreSQL link. Entry points: demo/demo_target.py (or `python -m demo`) and
demo/faultproxy.py; scripts/demo.sh runs the whole system."""
