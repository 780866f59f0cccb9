"""`python -m benchmarks [--quick] [--only decode,filter,grpo]`: the benchmark suite (benchmarks/suite.py)."""

import sys

from benchmarks.suite import main

sys.exit(main())
