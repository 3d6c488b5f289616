#!/usr/bin/env python3
"""perfpipe demo target: the entry point of the demo shop API (the code lives in demo/app.py; see its docstring).

    python3 demo/demo_target.py --host 127.0.0.1 --port 8090 [--workers 2] [--redis-url URL] [--database-url URL]
                                [--latency-ms 0] [--error-rate 0.0] [--max-concurrency 0]

Without --database-url it keeps its data in memory (no Redis, no PostgreSQL needed): a quick stand-alone target.
scripts/demo.sh runs the whole demo system (Redis, PostgreSQL, the fault proxy and this API).
"""

import os
import sys

# Run as a script, Python puts demo/ first on sys.path; the package needs the repo root instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from demo.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
