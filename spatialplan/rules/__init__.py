"""Rules: the rulebook, the 8+X catalogue, the siting-rule registry, county plug-ins.

``spatialplan.rules`` was the rulebook module before the layout by stage; its names still
resolve here, with a DeprecationWarning, for one release (use ``spatialplan.rules.rulebook``).
"""

from spatialplan import _compat


def __getattr__(name: str):
    return _compat.forward_attribute(__name__, name)
