"""Judging the variants: the benchmark, statistics, the frontier, figures and the report."""
