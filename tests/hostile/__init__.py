"""The hostile-input harness (issue 8): case tables, the files they need, and the checks.

`harness` runs one case and judges it; `cases` holds the tables. Both tests/test_hostile.py and
benchmarks/reliability_report.py (the figures in docs/RELIABILITY.md) run the same cases.
"""
