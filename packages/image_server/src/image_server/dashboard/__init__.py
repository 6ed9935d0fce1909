"""The browser dashboard at ``/ui``: Google login, costs, galleries, default model.

The composition root builds it with ``build_dashboard(service, DashboardConfig(...))``
and mounts the result with ``Mount("/ui", app=...)``.
"""

from image_server.dashboard.app import build_dashboard
from image_server.dashboard.config import DashboardConfig
from image_server.dashboard.signouts import STATE_DIR as SIGN_OUTS_DIR
from image_server.dashboard.signouts import FileSignOuts

__all__ = ["SIGN_OUTS_DIR", "DashboardConfig", "FileSignOuts", "build_dashboard"]
