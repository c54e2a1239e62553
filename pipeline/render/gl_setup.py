"""Headless pyrender, configured once per process (STACK §2).

Import order matters: ``PYOPENGL_PLATFORM`` must be set before PyOpenGL/pyrender are
imported, otherwise pyrender tries X11. Three fixes are applied here and nowhere else:

* ``PYOPENGL_PLATFORM=egl`` unless the caller chose something (e.g. ``osmesa``).
* ``np.infty`` shim: pyrender 0.1.45 still uses it and numpy 2 removed it.
* MSAA off: pyrender always renders FLAT passes into a 4x multisampled buffer, which
  blends silhouette pixels and corrupts packed point ids on EGL. We patch the
  renderbuffer allocation to 0 samples, which makes ID images exact.
* Colour-only readback: pyrender always reads and linearises the depth buffer (~5 ms
  per 800² view on llvmpipe). Inside :func:`color_only` the framebuffer read returns
  ``(color, None)`` instead; outside it pyrender behaves as shipped.

Only one ``OffscreenRenderer`` exists per process (deleting a second EGL renderer breaks
the first one's context); it is resized in place for each call.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
if not hasattr(np, "infty"):
    np.infty = np.inf  # type: ignore[attr-defined]  # pyrender 0.1.45 + numpy 2

log = logging.getLogger(__name__)

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {"available": None, "error": None, "renderer": None, "pyrender": None, "color_only": False, "pid": os.getpid()}


def _forget_if_forked() -> None:
    """A forked child inherits the parent's renderer object but not its GL context: drop
    it (without deleting, which would touch the parent's context) and start afresh."""
    if _STATE["pid"] != os.getpid():
        _STATE.update(renderer=None, available=None, error=None, pid=os.getpid())


def _import_pyrender():
    """Import pyrender with the MSAA patch applied (idempotent)."""
    if _STATE["pyrender"] is None:
        import pyrender  # noqa: WPS433 (import after the env var on purpose)
        import pyrender.renderer as _rr
        from OpenGL import GL as _GL

        if not getattr(_rr, "_partstad_msaa_off", False):

            def _no_msaa(target, samples, fmt, width, height):
                return _GL.glRenderbufferStorageMultisample(target, 0, fmt, width, height)

            _rr.glRenderbufferStorageMultisample = _no_msaa
            _rr._partstad_msaa_off = True

            original_read = _rr.Renderer._read_main_framebuffer

            def _read(self, scene, flags):
                if not _STATE["color_only"] or flags & pyrender.RenderFlags.DEPTH_ONLY or flags & pyrender.RenderFlags.RGBA:
                    return original_read(self, scene, flags)
                width, height = self._main_fb_dims[0], self._main_fb_dims[1]
                _GL.glBindFramebuffer(_GL.GL_READ_FRAMEBUFFER, self._main_fb_ms)
                _GL.glBindFramebuffer(_GL.GL_DRAW_FRAMEBUFFER, self._main_fb)
                _GL.glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, _GL.GL_COLOR_BUFFER_BIT, _GL.GL_NEAREST)
                _GL.glBindFramebuffer(_GL.GL_READ_FRAMEBUFFER, self._main_fb)
                buf = _GL.glReadPixels(0, 0, width, height, _GL.GL_RGB, _GL.GL_UNSIGNED_BYTE)
                color = np.frombuffer(buf, dtype=np.uint8).reshape((height, width, 3))
                return np.flip(color, axis=0), None

            _rr.Renderer._read_main_framebuffer = _read
        _STATE["pyrender"] = pyrender
    return _STATE["pyrender"]


def get_renderer(width: int, height: int, point_size: float = 1.0):
    """The process-wide ``OffscreenRenderer``, resized to (width, height).

    Raises whatever pyrender raises when no GL context can be created; call
    :func:`gl_available` first when a fallback is wanted.
    """
    with _LOCK:
        _forget_if_forked()
        pyrender = _import_pyrender()
        r = _STATE["renderer"]
        if r is None:
            r = pyrender.OffscreenRenderer(int(width), int(height), point_size=float(point_size))
            _STATE["renderer"] = r
        r.viewport_width = int(width)
        r.viewport_height = int(height)
        r.point_size = float(point_size)
        return r


def gl_available() -> bool:
    """True if an offscreen GL context can be created here. Tried once, then cached."""
    with _LOCK:
        _forget_if_forked()
        if _STATE["available"] is None:
            try:
                get_renderer(8, 8)
                _STATE["available"] = True
            except Exception as exc:  # no EGL/OSMesa, no driver, pyrender missing...
                _STATE["available"] = False
                _STATE["error"] = f"{type(exc).__name__}: {exc}"
                log.info("offscreen GL unavailable (%s)", _STATE["error"])
        return bool(_STATE["available"])


def gl_error() -> str | None:
    """Why :func:`gl_available` returned False (None if it did not)."""
    return _STATE["error"]


class color_only:
    """Context manager: pyrender renders skip the depth readback (returns (color, None)).
    Use it only while holding :func:`render_lock`."""

    def __enter__(self):
        _STATE["color_only"] = True
        return self

    def __exit__(self, *exc):
        _STATE["color_only"] = False
        return False


def render_lock() -> threading.RLock:
    """Lock serialising use of the shared renderer (GL contexts are not thread-safe)."""
    return _LOCK
