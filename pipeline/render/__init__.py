"""Multi-view point rendering (SPEC §2.3): numpy z-buffer splat or pyrender (OpenGL).

Importing this package never imports pyrender/OpenGL; that happens on first GL use.
"""

from pipeline.render.render import RenderResult, default_radius_px, render_views

__all__ = ["RenderResult", "default_radius_px", "render_views"]
