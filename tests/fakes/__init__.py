"""Local stand-ins for third-party HTTP APIs, speaking their real wire protocols."""
