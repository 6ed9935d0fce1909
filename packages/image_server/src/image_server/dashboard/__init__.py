"""The browser dashboard at ``/ui``: Google login, costs, galleries, default model.

The composition root builds it with ``build_dashboard(service, DashboardConfig(...))``
and mounts the result with ``Mount("/ui", app=...)``.
"""

from image_server.dashboard.app import build_dashboard
from image_server.dashboard.config import DashboardConfig

__all__ = ["DashboardConfig", "build_dashboard"]
