"""Quickstart: fine-tune all-MiniLM-L6-v2 on built-in data and print retrieval metrics before/after.

    python examples/quickstart.py            # same as `anycl demo`

Offline, about 2–3 minutes on 2 CPU cores. See anycl/cli/demo_job.py for how the data is built.
"""

import sys

from anycl.cli.demo_job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
