"""Feature accounting of the deferred layers of a dask run (helpers of :mod:`.engine`).

With ``--engine dask`` the driver only opens the lines and parcels (``read_plan(...,
defer=...)``); the partitions read and validate them over their own extents, so a feature may
be read by several partitions and one without a geometry by none. Each partition reports, per
deferred layer, the row positions it saw and the features its read rejected or repaired
(:func:`spatialplan.pipeline._dask._accounts`); :func:`account_deferred` puts these together
into the plan's :class:`~spatialplan.io.read.Layer` — one row per feature, in source order —
and reads the features no partition saw (no geometry, an empty one, non-finite coordinates)
by their FIDs, so that ``n_in == n_ok + n_repaired + n_rejected`` holds as in a full read.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from spatialplan.errors import DataSourceError, SpatialPlanError
from spatialplan.pipeline._dask import _Shared, feature_positions, read_some

__all__ = ["account_deferred"]

log = logging.getLogger("spatialplan.pipeline.engine")


def account_deferred(plan, shared: _Shared, outs: list[dict[str, Any]]) -> None:
    """Fill in the repaired and rejected features of the plan's deferred layers.

    Parameters
    ----------
    plan
        The plan given to the dask engine; its deferred layers are replaced by accounted ones
        (``accounted=True``, ``rejected``, ``repaired`` and ``source.n_zm_dropped`` filled in).
    shared
        The run's shared inputs (``shared.deferred``: the roles to account).
    outs
        The partitions' reports (each with ``"accounts"``).

    Raises
    ------
    DataSourceError
        When a partition saw a row the driver did not count (the layer changed during the run).
    SpatialPlanError
        When a feature with a usable geometry was read by no partition (never expected: every
        extent is covered by a partition).
    """
    for role in sorted(shared.deferred):
        layer = plan.layers[role]
        reports = [o["accounts"].pop(role) for o in outs if role in o.get("accounts", {})]
        seen = np.zeros(layer.n_in, dtype=bool)  # a mask, not np.unique: 10⁶ rows in ms
        for r in reports:
            rows = np.asarray(r["seen"], dtype=np.int64)
            if len(rows) and (rows.min() < 0 or rows.max() >= layer.n_in):
                raise DataSourceError(
                    f"the {role} layer changed while the check ran: a partition read a "
                    f"feature beyond the {layer.n_in} the driver counted",
                    path=layer.source.path, layer=role,
                    hint="run the check again on a layer nobody is editing")
            seen[rows] = True
        unread = np.flatnonzero(~seen).astype(np.int64)
        if len(unread):
            reports.append(_unread(shared, role, unread))
        rejected = _one_each([r["rejected"] for r in reports] or [layer.rejected])
        repaired = _one_each([r["repaired"] for r in reports] or [layer.repaired])
        zm = np.unique(np.concatenate([np.asarray(r["zm"], dtype=np.int64) for r in reports]
                                      + [np.array([], dtype=np.int64)]))
        source = dataclasses.replace(layer.source, n_zm_dropped=len(zm))
        plan.layers[role] = dataclasses.replace(layer, rejected=rejected, repaired=repaired,
                                                zm_dropped=zm, source=source, accounted=True)
        log.info("layer %s: %d features (%d read by no partition), %d repaired, %d rejected",
                 role, layer.n_in, len(unread), len(repaired), len(rejected))


def _unread(shared: _Shared, role: str, unread: np.ndarray) -> dict[str, Any]:
    """Read the features no partition saw, by FID; each must be one a full read rejects."""
    layer = read_some(shared, role, positions=unread)
    if len(layer.data):
        ids = ", ".join(map(str, layer.data["feature_id"][:3]))
        raise SpatialPlanError(
            f"{len(layer.data)} features of the {role} layer were read by no partition "
            f"(e.g. {ids})", layer=role,
            hint="report this with the plan: a partition extent missed them")
    return {"rejected": layer.rejected, "repaired": layer.repaired, "zm": layer.zm_dropped}


def _one_each(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate the partitions' tables, one row per feature, in source order."""
    frames = [f for f in frames if len(f)] or frames[:1]
    table = pd.concat(frames, ignore_index=True).drop_duplicates("feature_id")
    order = np.argsort(feature_positions(table["feature_id"].to_numpy(dtype=object)),
                       kind="stable")
    return table.iloc[order].reset_index(drop=True)
