"""Frozen workflow code that finishes incidents started before the current workflow types.

Nothing here changes again except to keep recorded histories replaying: new
incidents run :class:`workflows.incident.IncidentWorkflow` (type ``Incident``).
"""
