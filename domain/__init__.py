"""Shared vocabulary of the incident orchestrator: models, policy, durations.

Nothing in this package performs I/O at import time, so workflow code can
import it through the sandbox.
"""
