"""Slack: incident channels, announcements, mentions and direct messages."""

from activities.slack.api import SlackApi, new_slack_client
from activities.slack.channel import SlackChannel

__all__ = ["SlackApi", "SlackChannel", "new_slack_client"]
