"""The synthetic demo township set (``layers/demo``) and its generator.

``spatialplan.demo`` was one module before the layout by stage; its names still resolve here,
with a DeprecationWarning, for one release (use ``spatialplan.demo.synthetic``).
"""

from spatialplan import _compat


def __getattr__(name: str):
    return _compat.forward_attribute(__name__, name)
