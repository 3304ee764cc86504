"""The "8+X" siting checks: one verdict per project, one finding per project x rule.

:func:`check_projects` runs the rules of the rulebook (:mod:`spatialplan.rules.rulebook`) on the
planned sites of the project register and returns two tables (see DESIGN.md, "Results"):

- ``projects``: one row per input project (accepted **and** rejected at read: count in = count
  out), with ``verdict`` = the worst of its findings (``error`` > ``fail`` > ``review`` >
  ``pass``; ``not_applicable`` does not count), the Chinese + English ``reasons`` and the
  measures (``area_m2``, ``redline_m2``, ``farmland_m2``, ...).
- ``findings``: one row per project x rule id (:data:`spatialplan.rules.rulebook.RULE_IDS`, then the
  rulebook's plug-in rules, see :mod:`spatialplan.rules._registry`) with
  ``status``, ``measure``, ``unit``, ``message`` and the rule's ``source``; after the contract
  columns come ``feature_id`` and ``subject``. As-built footprints with no planned project
  (unmapped builds, 未落图先建设) are extra ``as_built`` / ``fail`` rows with
  ``subject == "unmapped_build"`` and the footprint's ``project_id`` (or its ``feature_id`` when
  it has none); every other row has ``subject == "project"``. They never add rows to
  ``projects``. :func:`unmapped_builds` returns the footprints themselves.

Overlaps above zero but below the tolerance (``[tolerance]`` of the rulebook) are ``review``
("boundary noise"), never a silent pass. Inputs must share one projected (metric) CRS; the
distances and areas of a site outside that CRS's Gauss-Kruger zone are measured as in its own
zone (:func:`spatialplan.core.distortion.site_scale`).

Examples
--------
>>> import geopandas as gpd, shapely
>>> projects = gpd.GeoDataFrame(
...     {"project_id": ["P1"], "name": ["镇卫生院"], "facility": ["卫生院"],
...      "township_code": ["520100001"]},
...     geometry=[shapely.box(450_000, 3_075_000, 450_050, 3_075_040)], crs="EPSG:4545")
>>> farmland = gpd.GeoDataFrame(geometry=[shapely.box(450_040, 3_075_000, 450_090, 3_075_040)],
...                             crs="EPSG:4545")
>>> result, findings = check_projects(projects, farmland=farmland, as_of="2024-06-30")
>>> result.loc[0, "verdict"], float(result.loc[0, "farmland_m2"])
('fail', 400.0)
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.core.distortion import site_scale
from spatialplan.errors import CRSError, DataLayerError, FieldError, SpatialPlanError
from spatialplan.rules import _sites
from spatialplan.rules._dates import bilingual
from spatialplan.rules._registry import BUILTIN_RULES, SitingRule, plugin_rules
from spatialplan.rules._sites import MU_M2, Out, object_array, text_values
from spatialplan.rules.rulebook import read_rules, rules_for

__all__ = [
    "COVERAGE_COLUMNS",
    "FINDING_COLUMNS",
    "PROJECT_COLUMNS",
    "VERDICT_ORDER",
    "check_projects",
    "facility_coverage",
    "unmapped_builds",
    "worst_status",
]

logger = logging.getLogger(__name__)

#: Severity of statuses; a verdict is the most severe finding (``not_applicable`` is ignored).
VERDICT_ORDER: dict[str, int] = {"pass": 0, "review": 1, "fail": 2, "error": 3}
#: Columns of the findings table (contract columns first).
FINDING_COLUMNS = (
    "project_id", "rule", "status", "measure", "unit", "message", "source", "feature_id", "subject",
)
#: measures of the projects table, in column order: the site's area, then the measures the
#: built-in rules declare (:data:`spatialplan.rules._registry.BUILTIN_RULES`; checked below)
_MEASURES = (
    "area_m2", "area_mu", "redline_m2", "farmland_m2", "farmland_mu", "cropland_m2",
    "outside_udb_m2", "landuse_compatible_share", "slope_mean_deg", "slope_max_deg",
    "slope_over_limit_share", "project_overlap_m2", "setback_min_m", "built_inside_share",
)
if set(_MEASURES[2:]) != {m for r in BUILTIN_RULES for m in r.measures}:  # pragma: no cover
    raise AssertionError("siting._MEASURES and the registry's measures differ")
_ATTRS = (
    "project_id", "feature_id", "name", "township_code", "facility_given", "status",
    "construction_type", "mapped_on", "permit_on", "start_on", "finish_on", "investment_wan",
    "start_year", "end_year",
)
#: Columns of the projects result, before ``geometry``.
PROJECT_COLUMNS = (
    "project_id", "feature_id", "name", "township_code", "township_found", "facility",
    "facility_name", "group", "status", "construction_type", "verdict", "reasons", "reasons_zh",
    *_MEASURES,
    "mapped_on", "permit_on", "start_on", "finish_on", "investment_wan", "start_year",
    "end_year", "facility_given",
)
_DATES = ("mapped_on", "permit_on", "start_on", "finish_on")


def worst_status(statuses: list[str] | np.ndarray | pd.Series) -> str:
    """Return the verdict for a set of finding statuses (worst wins, ``not_applicable`` ignored).

    Examples
    --------
    >>> worst_status(["pass", "not_applicable", "review", "fail"])
    'fail'
    >>> worst_status(["not_applicable"])
    'pass'
    """
    best = "pass"
    for s in statuses:
        if VERDICT_ORDER.get(s, -1) > VERDICT_ORDER[best]:
            best = s
    return best


# --------------------------------------------------------------------------- inputs


def _dates_of(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
        if getattr(values.dt, "tz", None) is not None:
            out = values.dt.tz_localize(None)
        return out.astype("datetime64[ns]")
    return pd.to_datetime(values, errors="coerce", format="mixed").astype("datetime64[ns]")


def _canonical(frame: pd.DataFrame, *, prefix: str) -> pd.DataFrame:
    """Return the canonical attribute columns of the register (missing ones filled with NA)."""
    n = len(frame)
    idx = pd.RangeIndex(n)

    def col(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name].reset_index(drop=True)
        return pd.Series([None] * n, index=idx, dtype=object)

    out = pd.DataFrame(index=idx)
    fid = text_values(col("feature_id"))
    fid = np.array(
        [f if f is not None else f"{prefix}:{i}" for i, f in enumerate(fid)], dtype=object
    )
    pid = text_values(col("project_id"))
    out["project_id"] = np.where(pd.isna(pid), fid, pid).astype(object)
    out["feature_id"] = fid
    out["name"] = text_values(col("name"))
    out["township_code"] = text_values(col("township_code"))
    out["facility_given"] = text_values(col("facility"))
    status = text_values(col("status"))
    out["status"] = np.array([s.lower() if s else s for s in status], dtype=object)
    out["construction_type"] = text_values(col("construction_type"))
    for name in _DATES:
        out[name] = _dates_of(col(name))
    out["investment_wan"] = pd.to_numeric(col("investment_wan"), errors="coerce").astype(float)
    for name in ("start_year", "end_year"):
        out[name] = pd.to_numeric(col(name), errors="coerce").round().astype("Int64")
    return out


def _check_crs(projects: gpd.GeoDataFrame, layers: dict[str, gpd.GeoDataFrame | None]) -> None:
    crs = projects.crs
    if crs is None:
        if len(projects) == 0:
            return
        raise CRSError(
            "the projects layer has no CRS", layer="projects",
            hint="read the layers through spatialplan.read_plan or set a projected CRS",
        )
    if not crs.is_projected:
        raise CRSError(
            f"the projects layer is in a geographic CRS ({crs.name}); siting measures in metres",
            layer="projects",
            hint="reproject every layer to the analysis CRS (a CGCS2000 Gauss-Krüger zone)",
        )
    for role, layer in layers.items():
        if layer is None or len(layer) == 0:
            continue
        if layer.crs is None or not layer.crs.equals(crs):
            raise CRSError(
                f"layer {role} is in {getattr(layer.crs, 'name', 'no CRS')}, the projects in "
                f"{crs.name}",
                layer=role,
                hint="reproject every layer to the one analysis CRS before checking",
            )


def _as_of(as_of: object) -> pd.Timestamp:
    if as_of is None:
        today = pd.Timestamp(_dt.date.today())
        logger.info("no as-of date given: using today, %s", today.date())
        return today
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


# --------------------------------------------------------------------------- context


class _Ctx:
    """Everything the rule functions share for the accepted projects (rows 0..n-1)."""

    def __init__(self, attrs, geoms, rules, catalog, as_of, crs=None):
        self.attrs: pd.DataFrame = attrs
        self.crs = crs
        self.n = len(attrs)
        self.rules: dict[str, Any] = rules
        self.catalog = catalog
        self.as_of: pd.Timestamp = as_of
        fac = catalog.facilities
        self.codes = np.empty(self.n, dtype=object)
        self.facility_error = np.empty(self.n, dtype=object)
        cache: dict[str, tuple[str | None, str | None]] = {}
        # text_values: a missing type is None here (a str column holds NaN, which is truthy)
        for i, given in enumerate(text_values(attrs["facility_given"])):
            key = given or ""
            if key not in cache:
                cache[key] = _resolve(given, catalog)
            self.codes[i], self.facility_error[i] = cache[key]
        self.code_rules = {c: rules_for(rules, c) for c in set(self.codes.tolist())}
        self.row_rules = [self.code_rules[c] for c in self.codes]
        # each row's catalogue entry: the index of its code in `known` (-1: no code)
        which, known = pd.factorize(self.codes)

        def fac_col(name: str) -> np.ndarray:
            values = fac[name].to_dict()
            per_code = np.empty(len(known) + 1, dtype=object)  # one by one: may be tuples
            for k, c in enumerate(known):
                per_code[k] = values.get(c)
            return per_code[which]  # -1 → the last entry, None

        self.group = fac_col("group")
        self.name_zh = fac_col("name_zh")
        self.outside_udb = fac_col("outside_udb")
        self.redline_kind = fac_col("redline_kind")
        self.landuse_codes = fac_col("landuse_codes")

        self.geoms_input = np.array(geoms, dtype=object)
        self.geoms = self.geoms_input.copy()
        self.geom_error = _geometry_problems(self.geoms)
        self.usable = pd.isna(self.geom_error)
        self.geoms[~self.usable] = None
        #: per site, factors turning lengths and areas measured in ``crs`` into those of the
        #: site's own Gauss-Kruger zone (1 in the analysis zone; core.distortion.site_scale)
        self.len_scale, self.area_scale = site_scale(self.geoms, crs)
        self.rescaled = bool(np.any(self.len_scale != 1.0) or np.any(self.area_scale != 1.0))
        self.area = np.where(self.usable, shapely.area(self.geoms), np.nan)
        if self.rescaled:
            self.area = self.area * self.area_scale
        self.tol_m2 = np.array([r["tolerance"]["min_overlap_m2"] for r in self.row_rules])
        self.tol_share = np.array([r["tolerance"]["min_overlap_share"] for r in self.row_rules])
        self.measures = {m: np.full(self.n, np.nan) for m in _MEASURES}
        self.measures["area_m2"] = self.area.copy()
        self.measures["area_mu"] = self.area / MU_M2
        self.township_found = np.full(self.n, None, dtype=object)
        self.eligible_now = np.ones(self.n, dtype=bool)
        #: the sites' overlays with each layer, shared by the rules (see rules._sites)
        self.overlaps: dict[str, Any] = {}

    def eligible(self, rule: SitingRule) -> np.ndarray:
        ok = np.ones(self.n, dtype=bool)
        if rule.geometric:
            ok &= self.usable
        if rule.per_facility:
            ok &= pd.isna(self.facility_error)
        return ok

    def enabled(self, rule: str) -> np.ndarray:
        """Whether ``rule`` is enabled for each row (per-facility overrides applied)."""
        return np.array([r[rule]["enabled"] for r in self.row_rules], dtype=bool)

    def setting(self, rule: str, key: str) -> np.ndarray:
        return np.array([r[rule][key] for r in self.row_rules], dtype=object)


def _resolve(given: str | None, catalog) -> tuple[str | None, str | None]:
    from spatialplan.errors import RulebookError
    from spatialplan.rules.catalog import resolve_facility

    if not given:
        return None, bilingual("缺少设施类别", "facility type missing")
    try:
        return resolve_facility(given, catalog), None
    except RulebookError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return None, bilingual(
            f"设施类别“{given}”不在目录中", f"unknown facility type {given!r}{hint}"
        )


def _geometry_problems(geoms: np.ndarray) -> np.ndarray:
    """Reason why each site cannot be checked (``None`` when it can)."""
    out = np.full(len(geoms), None, dtype=object)
    none = np.full(len(geoms), None, dtype=object)  # the geometries not tested any more
    missing = shapely.is_missing(geoms)
    out[missing] = bilingual("缺少选址范围", "no site geometry")
    rest = ~missing
    empty = rest & shapely.is_empty(np.where(rest, geoms, none))
    out[empty] = bilingual("选址范围为空", "site geometry is empty")
    rest &= ~empty
    types = shapely.get_type_id(np.where(rest, geoms, none))
    not_poly = rest & ~np.isin(types, (3, 6))
    out[not_poly] = bilingual("选址不是面要素", "site is not a polygon")
    rest &= ~not_poly
    invalid = rest & ~shapely.is_valid(np.where(rest, geoms, none))
    out[invalid] = bilingual("选址几何无效", "site geometry is invalid")
    rest &= ~invalid
    zero = rest & ~(shapely.area(np.where(rest, geoms, none)) > 0)
    out[zero] = bilingual("选址面积为零", "site has zero area")
    return out




# --------------------------------------------------------------------------- assembly


def _na(n: int, mask: np.ndarray, message: str) -> Out:
    return Out(n).fill(mask, "not_applicable", message)


def _run_rule(ctx: _Ctx, rule: SitingRule, layers: dict[str, Any]) -> Out:
    ctx.eligible_now = ctx.eligible(rule)
    enabled = ctx.enabled(rule.id)
    if not enabled.any():
        return _na(ctx.n, np.ones(ctx.n, dtype=bool), bilingual("规则已停用", "rule disabled"))
    ctx.eligible_now = ctx.eligible_now & enabled
    if rule.builtin:
        out = rule.function(ctx, layers)
    else:
        from spatialplan.rules._plugins import run_plugin

        out = run_plugin(ctx, rule, layers)
    disabled = ~enabled
    out.status[disabled] = "not_applicable"
    out.message[disabled] = bilingual("规则已停用（按设施类别）",
                                      "rule disabled for this facility type")
    return out


def _run_rules(ctx: _Ctx, layers: dict[str, Any],
               active: tuple[SitingRule, ...]) -> dict[str, list[np.ndarray]]:
    """Compute every rule's findings columns for the accepted projects.

    In the order of ``active``: the built-in rules of the registry, then the rulebook's plug-ins.

    The overlays of the sites with the layers are computed first, several at once in threads
    (:func:`spatialplan.rules._sites.prefetch_overlaps`); the rules then share them.
    """
    _sites.prefetch_overlaps(ctx, layers, rules=[r.id for r in active
                                                 if r.builtin and ctx.enabled(r.id).any()])
    per_rule: dict[str, list[np.ndarray]] = {"status": [], "measure": [], "unit": [],
                                             "message": [], "source": []}
    for rule in active:
        out = _run_rule(ctx, rule, layers)
        missing = out.status == None  # noqa: E711
        for i in np.flatnonzero(missing).tolist():
            out.set(i, "error", _error_reason(ctx, rule, i))
        per_rule["status"].append(out.status)
        per_rule["measure"].append(out.measure)
        per_rule["unit"].append(out.unit)
        per_rule["message"].append(out.message)
        per_rule["source"].append(_sources(ctx.row_rules, rule, ctx.n))
    return per_rule


def _sources(row_rules: list[dict[str, Any]], rule: SitingRule, n: int) -> np.ndarray:
    """Each row's source of ``rule``: the plug-in's own, or the (facility's) rulebook entry."""
    if rule.source is not None:
        return np.full(n, rule.source, dtype=object)
    return np.array([r[rule.id]["source"] for r in row_rules], dtype=object)


def _rejected_block(rejected: pd.DataFrame, rules: dict[str, Any],
                    active: tuple[SitingRule, ...]) -> dict[str, np.ndarray]:
    """Build the findings columns of the projects rejected at read: ``error`` for every rule."""
    reason = (text_values(rejected["reason"]) if "reason" in rejected.columns
              else [None] * len(rejected))
    message = np.array([bilingual(f"读取时被拒绝：{r or '原因不明'}",
                                  f"rejected when read: {r or 'reason unknown'}")
                        for r in reason], dtype=object)
    k = len(active)
    return _block({"status": ["error"] * k, "measure": [np.nan] * k, "unit": [""] * k,
                   "message": [message] * k,
                   "source": [rule.source if rule.source is not None
                              else rules[rule.id]["source"] for rule in active]},
                  len(rejected))


def _error_reason(ctx: _Ctx, rule: SitingRule, i: int) -> str:
    if rule.geometric and not ctx.usable[i]:
        return ctx.geom_error[i]
    if rule.per_facility and ctx.facility_error[i] is not None:
        return ctx.facility_error[i]
    return bilingual("无法核查", "could not be checked")


def _block(per_rule: dict[str, list[Any]], n: int) -> dict[str, np.ndarray]:
    """Build the findings columns of ``n`` projects, project-major (rule order within).

    ``per_rule`` maps a column to one value or one array of ``n`` values per rule run.
    """
    cols = {}
    for name, values in per_rule.items():
        matrix = np.empty((len(values), n), dtype=float if name == "measure" else object)
        for r, v in enumerate(values):
            matrix[r] = v
        cols[name] = matrix.T.ravel()
    return cols


def _repeated(values: np.ndarray, index: np.ndarray) -> pd.Series:
    """``values[index]`` with the dtype pandas infers for ``values``, converted once."""
    return pd.Series(np.asarray(values, dtype=object)).take(index).reset_index(drop=True)


def _findings_frame(project_id: np.ndarray, feature_id: np.ndarray,
                    blocks: list[dict[str, np.ndarray]], ids: tuple[str, ...]) -> pd.DataFrame:
    """Collect the findings of the projects (``blocks`` of :func:`_block`, in project order).

    The id, rule and subject columns repeat a few values: they are converted to pandas
    strings once and repeated, not converted row by row.
    """
    n, k = len(project_id), len(ids)
    if n == 0:
        return _empty_findings()
    project = np.repeat(np.arange(n), k)
    cols = {"project_id": _repeated(project_id, project),
            "rule": _repeated(np.array(ids, dtype=object), np.tile(np.arange(k), n)),
            "feature_id": _repeated(feature_id, project),
            "subject": _repeated(np.array(["project"], dtype=object), np.zeros(n * k, int))}
    for c in ("status", "measure", "unit", "message", "source"):
        cols[c] = np.concatenate([b[c] for b in blocks])
    return pd.DataFrame(cols, columns=list(FINDING_COLUMNS))


def _empty_findings() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in FINDING_COLUMNS})
    frame["measure"] = frame["measure"].astype(float)
    return frame


def _zh_part(message: str) -> str:
    return "；".join(part.split(" / ")[0] for part in message.split("；"))


def _verdicts(status: np.ndarray, message: np.ndarray, k: int) -> tuple[np.ndarray, list[str],
                                                                         list[str]]:
    """Verdict, reasons and Chinese reasons of each project (worst finding wins).

    ``status`` and ``message`` are the project-major findings of the projects, ``k`` rows
    (one per rule run) per project.
    """
    sev = np.zeros(len(status), dtype=np.int8)
    for name, v in VERDICT_ORDER.items():
        if v > 0:
            sev[status == name] = v
    names = np.empty(max(VERDICT_ORDER.values()) + 1, dtype=object)
    for name, v in VERDICT_ORDER.items():
        names[v] = name
    verdict = names[sev.reshape(-1, k).max(axis=1, initial=0)]
    n = len(verdict)
    msgs: list[list[str]] = [[] for _ in range(n)]
    hit = np.flatnonzero(sev > 0)
    for owner, m in zip((hit // k).tolist(), message[hit].tolist(), strict=True):
        if m not in msgs[owner]:  # one reason once (a rejected project: 12 equal errors)
            msgs[owner].append(m)
    ok = bilingual("各项检查均符合", "all checks passed")
    zh: dict[str, str] = {}
    for m in message[hit].tolist():
        if m not in zh:
            zh[m] = _zh_part(m)
    reasons = ["; ".join(m) if m else ok for m in msgs]
    reasons_zh = ["；".join(zh[x] for x in m) if m else _zh_part(ok) for m in msgs]
    return verdict, reasons, reasons_zh


def check_projects(
    projects: gpd.GeoDataFrame,
    *,
    townships: gpd.GeoDataFrame | None = None,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    parcels: gpd.GeoDataFrame | None = None,
    cropland: gpd.GeoDataFrame | None = None,
    built: gpd.GeoDataFrame | None = None,
    slope: pd.DataFrame | None = None,
    rules: dict[str, Any] | None = None,
    catalog: Any = None,
    as_of: _dt.date | str | pd.Timestamp | None = None,
    rejected: pd.DataFrame | None = None,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Check every project of the 8+X register against the siting rules.

    Parameters
    ----------
    projects
        Accepted projects (canonical fields ``project_id``, ``name``, ``facility``, optional
        ``township_code``, ``status``, dates, ``investment_wan``, years; ``feature_id`` when read
        by :func:`spatialplan.io.read.read_plan`), planned sites as polygons in a projected CRS.
    townships, redline, farmland, udb, parcels, cropland, built
        Layers in the same CRS (``None`` → the rules needing them are ``not_applicable``).
        ``townships`` needs ``code`` (and ``name``), ``parcels`` ``landuse``, ``built``
        ``project_id``, ``udb`` optionally ``zone``.
    slope
        :func:`spatialplan.analysis.terrain.site_slope_stats` output indexed by ``feature_id``
        (``None`` → the ``slope`` rule is ``not_applicable``).
    rules
        Merged rulebook (:func:`spatialplan.rules.rulebook.read_rules`); the defaults when ``None``.
    catalog
        Facility catalogue (:func:`spatialplan.rules.catalog.read_catalog`); the bundled one when
        ``None``.
    as_of
        Date of the check for the date rules; today when ``None``.
    rejected
        Projects rejected at read (``feature_id``, ``reason`` and canonical attributes): each
        gets verdict ``error`` with the reason.
    layers
        More layers by role (same CRS), for the plug-in rules of the rulebook
        (:func:`spatialplan.siting_rule`), e.g. ``{"rivers": rivers}``; the keyword layers
        above win over an entry of the same role.

    Returns
    -------
    projects : GeoDataFrame
        One row per input project (accepted then rejected, input order) with the columns of
        :data:`PROJECT_COLUMNS` and ``geometry`` (null for rejected rows).
    findings : DataFrame
        One row per project x rule (:data:`FINDING_COLUMNS`; the built-in rules in registry
        order, then the rulebook's plug-in rules), then one ``as_built`` / ``fail`` row per
        unmapped build (``subject == "unmapped_build"``).

    Raises
    ------
    CRSError
        A layer is unprojected (geographic) or in a different CRS from the projects.
    RulebookError
        The rulebook's setback pairs name an unknown facility type, or a plug-in module
        changed since the rulebook was read.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> p = gpd.GeoDataFrame({"project_id": ["A"], "name": ["污水站"], "facility": ["sewage"]},
    ...                      geometry=[shapely.box(0, 0, 20, 20)], crs="EPSG:4545")
    >>> res, fnd = check_projects(p, as_of="2024-01-01")
    >>> len(fnd), res.loc[0, "facility_name"]
    (12, '污水处理厂')
    """
    from spatialplan.rules.catalog import read_catalog

    named = {"townships": townships, "redline": redline, "farmland": farmland, "udb": udb,
             "parcels": parcels, "cropland": cropland, "built": built}
    layers = {**dict(layers or {}), **{k: v for k, v in named.items() if v is not None}}
    layers.update({k: None for k in named if k not in layers})
    _check_crs(projects, layers)
    rules = read_rules() if rules is None else rules
    active = BUILTIN_RULES + plugin_rules(rules)
    run_ids = tuple(r.id for r in active)
    catalog = read_catalog() if catalog is None else catalog
    as_of_ts = _as_of(as_of)
    n_rejected = 0 if rejected is None else len(rejected)
    n_in = len(projects) + n_rejected

    attrs = _canonical(pd.DataFrame(projects.drop(columns=projects.geometry.name)),
                       prefix="projects")
    rej = None if not n_rejected else _canonical(pd.DataFrame(rejected), prefix="rejected")
    ids = pd.Series(list(attrs["feature_id"]) + ([] if rej is None else list(rej["feature_id"])))
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise DataLayerError(
            f"feature_id {dup!r} occurs more than once in the projects (or rejected) table",
            layer="projects", feature=dup,
            hint="give every project a unique feature_id (spatialplan.read_plan does this)",
        )
    ctx = _Ctx(attrs, np.asarray(projects.geometry.array, dtype=object), rules, catalog,
               as_of_ts, crs=projects.crs)
    layers["slope"] = slope
    blocks = [_block(_run_rules(ctx, layers, active), ctx.n)]
    project_id, feature_id = attrs["project_id"].to_numpy(), attrs["feature_id"].to_numpy()
    if rej is not None:
        blocks.append(_rejected_block(rejected, rules, active))
        project_id = np.concatenate([project_id, rej["project_id"].to_numpy()])
        feature_id = np.concatenate([feature_id, rej["feature_id"].to_numpy()])
    # project-major (input order, accepted then rejected), rule order within
    status = np.concatenate([b["status"] for b in blocks])
    message = np.concatenate([b["message"] for b in blocks])
    findings = _findings_frame(project_id, feature_id, blocks, run_ids)
    result = _projects_frame(ctx, rej, _verdicts(status, message, len(run_ids)), projects.crs)
    known = set(result["project_id"].dropna().astype(str))
    lost = _sites.unmapped_build_rows(built if rules["as_built"]["enabled"] else None, known)
    if len(lost):
        findings = pd.concat([findings, _unmapped_findings(lost, rules)], ignore_index=True)
    if len(result) != n_in or len(result) != len(set(result["feature_id"])):
        raise SpatialPlanError(
            f"siting accounting broken: {n_in} projects in, {len(result)} out",
            hint="please report this as a bug",
        )
    counts = result["verdict"].value_counts().to_dict()
    logger.info("siting: %d projects checked (%s); %d unmapped builds", n_in, counts, len(lost))
    return result, findings


def _projects_frame(ctx, rej, verdicts, crs) -> gpd.GeoDataFrame:
    verdict, reasons, reasons_zh = verdicts
    acc = ctx.attrs.copy()
    acc["facility"] = np.where(pd.isna(ctx.codes), acc["facility_given"], ctx.codes)
    acc["facility_name"] = ctx.name_zh
    acc["group"] = ctx.group
    acc["township_found"] = ctx.township_found
    for m in _MEASURES:
        acc[m] = ctx.measures[m]
    geoms = list(ctx.geoms_input)
    if rej is not None:
        r = rej.copy()
        r["facility"] = r["facility_given"]
        for c in ("facility_name", "group", "township_found"):
            r[c] = None
        for m in _MEASURES:
            r[m] = np.nan
        acc = pd.concat([acc, r[acc.columns]], ignore_index=True) if len(acc) else r[acc.columns]
        geoms += [None] * len(r)
    acc["verdict"] = verdict
    acc["reasons"] = object_array(reasons)
    acc["reasons_zh"] = object_array(reasons_zh)
    for c in ("facility_name", "group", "township_found", "facility", "verdict"):
        acc[c] = acc[c].astype(object)
    out = gpd.GeoDataFrame(acc[list(PROJECT_COLUMNS)].reset_index(drop=True),
                           geometry=gpd.GeoSeries(geoms, crs=crs))
    return out


def _unmapped_findings(lost: gpd.GeoDataFrame, rules: dict[str, Any]) -> pd.DataFrame:
    msgs = []
    for pid, area in zip(lost["project_id"], lost["area_m2"], strict=True):
        zh, en = _sites.fmt_area(float(area))
        msgs.append(bilingual(
            f"建成图斑 {pid}（{zh}）无对应规划项目：未落图先建设",
            f"as-built footprint {pid} ({en}) has no planned project: built without being "
            "on the layout map"))
    return pd.DataFrame({
        "project_id": lost["project_id"].astype(object).to_numpy(), "rule": "as_built",
        "status": "fail", "measure": lost["area_m2"].astype(float).to_numpy(), "unit": "m2",
        "message": msgs, "source": rules["as_built"]["source"],
        "feature_id": lost["feature_id"].astype(object).to_numpy(), "subject": "unmapped_build",
    })[list(FINDING_COLUMNS)]


def unmapped_builds(
    built: gpd.GeoDataFrame, projects: pd.DataFrame, *, rejected: pd.DataFrame | None = None
) -> gpd.GeoDataFrame:
    """As-built footprints whose ``project_id`` matches no project of the register.

    Parameters
    ----------
    built
        The as-built footprints (``project_id``; ``feature_id`` when read by ``read_plan``).
    projects
        The register (accepted projects, or the ``projects`` result of :func:`check_projects`).
    rejected
        Projects rejected at read: their ids count as known.

    Returns
    -------
    GeoDataFrame
        ``project_id`` (the footprint's, or its ``feature_id`` when it has none), ``feature_id``,
        ``area_m2`` and the footprint geometry.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> b = gpd.GeoDataFrame({"project_id": ["A", "Z"]},
    ...                      geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 5, 7, 7)])
    >>> unmapped_builds(b, pd.DataFrame({"project_id": ["A"]}))["project_id"].tolist()
    ['Z']
    """
    known = set(text_values(projects["project_id"]).tolist()) - {None}
    if rejected is not None and "project_id" in rejected.columns:
        known |= set(text_values(rejected["project_id"]).tolist()) - {None}
    return _sites.unmapped_build_rows(built, known)


# --------------------------------------------------------------------------- coverage


#: Columns of :func:`facility_coverage`, in order.
COVERAGE_COLUMNS = (
    "township_code", "n_projects", "eight_present", "eight_missing", "eight_noncompliant",
    "eight_unchecked", "n_group_8", "n_group_X", "n_unknown",
)
#: verdicts through which a facility counts as present: it will really exist
_COMPLIANT = ("pass", "review")


def facility_coverage(
    projects_result: pd.DataFrame, townships: pd.DataFrame, *, catalog: Any = None
) -> pd.DataFrame:
    """8+X coverage per township: which of the "8" will really exist, which are missing.

    A category is present only through a project whose verdict is ``pass`` or ``review``;
    a project that fails (or could not be checked) does not make it present.

    Parameters
    ----------
    projects_result
        The ``projects`` result of :func:`check_projects` (``verdict``; ``township_code``, or
        ``township_found`` where no township was declared; ``facility``, ``group``).
    townships
        The township layer (``code``; or ``township_code``).
    catalog
        Facility catalogue; the bundled one when ``None``.

    Returns
    -------
    DataFrame
        One row per township, :data:`COVERAGE_COLUMNS`: ``township_code``, ``n_projects``,
        ``eight_present`` (";"-joined codes in catalogue order, through a compliant project),
        ``eight_missing`` (every other one of the "8"), of these ``eight_noncompliant``
        (registered, but every project of it fails) and ``eight_unchecked`` (registered, no
        compliant project, at least one whose verdict is ``error`` or missing), ``n_group_8``,
        ``n_group_X`` and ``n_unknown`` (projects with an unknown facility type).

    Raises
    ------
    FieldError
        When ``projects_result`` has no ``verdict`` column.

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"township_code": ["T1", "T1"], "facility": ["school", "market"],
    ...                     "group": ["8", "8"], "verdict": ["pass", "fail"]})
    >>> cov = facility_coverage(res, pd.DataFrame({"code": ["T1", "T2"]}))
    >>> cov.loc[0, "eight_present"], cov.loc[0, "eight_noncompliant"]
    ('school', 'market')
    >>> int(cov.loc[1, "n_projects"])
    0
    """
    from spatialplan.rules.catalog import eight_codes, read_catalog

    if "verdict" not in projects_result.columns:
        raise FieldError("8+X coverage needs the 'verdict' column of the projects",
                         layer="projects",
                         hint="pass the projects result of check_projects, not the register")
    catalog = read_catalog() if catalog is None else catalog
    eight = eight_codes(catalog)
    code_col = "code" if "code" in townships.columns else "township_code"
    codes = pd.unique(pd.Series(text_values(townships[code_col]), dtype=object).dropna())
    frame = _coverage_frame(projects_result)
    registered = frame.dropna(subset=["facility"])
    by_kind = {kind: registered[registered["kind"] == kind].groupby("t")["facility"].agg(set)
               for kind in ("ok", "fail", "unchecked")}
    counts = pd.DataFrame({
        "n_projects": frame.groupby("t").size(),
        "n_group_8": (frame["group"] == "8").groupby(frame["t"]).sum(),
        "n_group_X": (frame["group"] == "X").groupby(frame["t"]).sum(),
        "n_unknown": frame["group"].isna().groupby(frame["t"]).sum(),
    }).reindex(codes, fill_value=0)  # a township without projects: 0
    rows = []
    for code, n in zip(codes, counts.itertuples(index=False), strict=True):
        have = by_kind["ok"].get(code, set())
        unchecked = by_kind["unchecked"].get(code, set()) - have
        failing = by_kind["fail"].get(code, set()) - have - unchecked
        rows.append({
            "township_code": code,
            "n_projects": int(n.n_projects),
            "eight_present": ";".join(c for c in eight if c in have),
            "eight_missing": ";".join(c for c in eight if c not in have),
            "eight_noncompliant": ";".join(c for c in eight if c in failing),
            "eight_unchecked": ";".join(c for c in eight if c in unchecked),
            "n_group_8": int(n.n_group_8),
            "n_group_X": int(n.n_group_X),
            "n_unknown": int(n.n_unknown),
        })
    out = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    for c in ("n_projects", "n_group_8", "n_group_X", "n_unknown"):
        out[c] = out[c].astype("int64")
    outside = frame[~frame["t"].isin(codes)]
    if len(outside):
        logger.info("coverage: %d projects outside the township layer", len(outside))
    return out


def _coverage_frame(projects_result: pd.DataFrame) -> pd.DataFrame:
    """Township, facility, group and kind of verdict (``ok``/``fail``/``unchecked``) per project."""
    declared = text_values(projects_result["township_code"])
    if "township_found" in projects_result.columns:
        found = text_values(projects_result["township_found"])
        declared = np.where(pd.isna(declared), found, declared)
    verdict = pd.Series(text_values(projects_result["verdict"]), dtype=object)
    kind = np.where(verdict.isin(_COMPLIANT), "ok",
                    np.where(verdict == "fail", "fail", "unchecked"))
    return pd.DataFrame({
        "t": declared,
        "facility": text_values(projects_result["facility"]),
        "group": text_values(projects_result["group"]) if "group" in projects_result.columns
        else None,
        "kind": kind,
    })
