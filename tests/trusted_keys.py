"""A key scheme for runner tests with made-up stages: upstream results trusted as stored.

The real stages key objects with :class:`stages.keys.KeyResolver` (config + code hash +
verified upstream keys); the runner's own tests use toy stages ("src" -> "dst") that have no
row in the stage table, so they key objects by a version string and the stage's params.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import BadInputError, MissingUpstreamError, ObjectError
from stages.keys import object_key
from stages.runner import StageContext


class TrustedUpstream:
    """Keys = stage, object, ``code_version``, ``params`` and the stored upstream keys."""

    def __init__(self, ctx: StageContext, upstream: list[str], code_version: str = "0", params: Any = None):
        self.ctx, self.upstream, self.code_version = ctx, list(upstream), code_version
        self.params = ctx.section() if params is None else params

    def current(self, stage: str, object_id: str) -> str:
        st = self.ctx.store(stage)
        fp = st.stored_fingerprint(object_id)
        if fp is None:
            try:  # an unreadable group gets the store's precise error (object and file)
                st.attrs(object_id)
            except BadInputError:
                raise
            except ObjectError:
                pass
            raise MissingUpstreamError(
                f"upstream stage {stage!r} has no complete result (run `partstad {stage}` first)", object_id=object_id, path=st.url
            )
        return fp

    def key(self, stage: str, object_id: str) -> str:
        ups = {u: self.current(u, object_id) for u in self.upstream}
        return object_key(stage, object_id, self.params, self.code_version, ups)

    def upstream_of(self, stage: str) -> list[str]:
        return list(self.upstream)


def trusted(ctx: StageContext, upstream: list[str] | tuple[str, ...] = (), code_version: str = "0") -> TrustedUpstream:
    """Keys for a toy stage run: ``run_stage(ctx, ids, work, keys=trusted(ctx, ["src"], "1"))``."""
    return TrustedUpstream(ctx, list(upstream), code_version)
