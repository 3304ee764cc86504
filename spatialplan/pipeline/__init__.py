"""Pipeline: the local and dask runners that chain reading, analysis, rules and rendering.

``result`` (what a check produced, shared by both sides) ← ``finish`` (the one finishing step)
← ``run`` (local runner) → ``engine`` → ``_dask`` (the dask engine); ``write`` (the
deliverables) imports ``result`` only. Only the CLI and the package face import the pipeline.

``spatialplan.pipeline`` was one module before the layout by stage; its names still resolve
here, with a DeprecationWarning, for one release.
"""

from spatialplan import _compat


def __getattr__(name: str):
    return _compat.forward_attribute(__name__, name)
