"""Benchmarks, each measuring ours against a baseline in the same run and counting the work done.

`python -m benchmarks` (`make bench`) runs them all (benchmarks/suite.py); each file also runs alone.
"""
