"""The test environment is complete: optional test dependencies fail loudly, never skip.

`./dev.sh test` installs the `test` extras; if one of them is missing the suite must go
red here instead of silently skipping the tests that need it.
"""
import importlib
import os

import pytest


@pytest.mark.parametrize("module", ["transformers", "safetensors", "filelock", "pydantic", "trimesh", "dask.distributed"])
def test_required_test_dependency_imports(module):
    assert importlib.import_module(module) is not None


def test_segment_anything_imports_through_the_torchvision_stand_in():
    from pipeline.segment.sam import _import_segment_anything

    sam = _import_segment_anything()
    assert hasattr(sam, "SamPredictor") or hasattr(sam, "sam_model_registry")


def test_offscreen_gl_is_available_when_required():
    """CI sets PARTSTAD_REQUIRE_GL=1 on machines with Mesa EGL so the pyrender tests cannot skip."""
    from pipeline.render.gl_setup import gl_available, gl_error

    if os.environ.get("PARTSTAD_REQUIRE_GL") != "1":
        pytest.skip("GL is a system library (Mesa EGL); set PARTSTAD_REQUIRE_GL=1 to require it")
    assert gl_available(), f"pyrender cannot create an offscreen context: {gl_error()}"
