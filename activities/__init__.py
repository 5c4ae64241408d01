"""Every side effect of the orchestrator: notifications, policy loading."""
