"""Fuzzing the engine and the job path with mutated image files.

``test_fuzz.py`` is the short run every CI build makes; ``python -m
tests.fuzz.long --count 10000`` is the long run, which prints a summary.
"""
