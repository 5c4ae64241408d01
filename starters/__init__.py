"""The ways in: the responder CLI and the HTTP service (webhooks, status page)."""
