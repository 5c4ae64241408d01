"""The built-in public status page served at ``/status`` by the HTTP service."""

from starters.status_page.router import status_page_router

__all__ = ["status_page_router"]
