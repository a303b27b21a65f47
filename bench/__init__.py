"""Benchmarks: ``bench/run`` (see ``bench/__main__.py``). Each compares the gateway with a
baseline measured in the same run on the same machine, and reports the ratio."""
