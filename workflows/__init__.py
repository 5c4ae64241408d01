"""Deterministic incident orchestration: no I/O, workflow time only."""
