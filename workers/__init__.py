"""Wiring: the worker process and the local stack launcher."""
