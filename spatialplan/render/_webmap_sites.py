"""The compact project-site layer of the web map, for plans with many sites.

Used by :func:`spatialplan.render.webmap.explore` above ``max_sites`` sites. The detailed layer
embeds each site twice (polygon and marker) with its own popup HTML, the full findings table: about
13 kB a site, 0.8 GB of HTML for 50,000 sites. This layer embeds instead:

- one GeoJSON ``FeatureCollection`` of the site polygons whose only property is the verdict
  (``v``), drawn on one canvas and styled by verdict;
- one table shared by every popup: ``s``, the distinct texts (names, ids, rule names, messages…),
  each escaped once with :func:`spatialplan.render._html.escape`; ``r``, one record per site of
  indices into ``s`` (name, verdict, the popup's fields, and its findings: rule and status, plus
  the measure and message for every finding that is not a pass or not applicable);
- a popup template in JavaScript that joins escaped texts with fixed markup, built when a site
  is clicked (no per-site HTML in the page);
- a marker at each site's centre, made in the browser from the polygon, clustered with
  Leaflet.markercluster (bundled); a cluster is coloured by the worst verdict inside it.

Safety: every text from the data is escaped here before it is embedded; the JavaScript only
concatenates those texts with constant markup, and the embedded JSON uses
:func:`spatialplan.render._html.json_for_script`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.template import Template

from spatialplan.render._html import escape, format_value, is_missing, json_for_script

__all__ = ["MARKERCLUSTER_ASSETS", "SiteLayer", "site_collection", "site_table"]

_CDN = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/"
#: CDN URL (as folium's MarkerCluster plugin writes it) → bundled file in layers/webassets/
MARKERCLUSTER_ASSETS: dict[str, str] = {
    _CDN + "leaflet.markercluster.js": "leaflet.markercluster-1.1.0.js",
    _CDN + "MarkerCluster.css": "MarkerCluster-1.1.0.css",
    _CDN + "MarkerCluster.Default.css": "MarkerCluster.Default-1.1.0.css",
}

#: findings with these statuses keep only rule and status in the compact popup
_BRIEF_STATUSES = ("pass", "not_applicable")

#: verdict order for a cluster's colour (worst wins), as in DESIGN.md
_VERDICT_RANK = {"pass": 1, "review": 2, "fail": 3, "error": 4}

_POPUP_FIELDS = (("编号 id", "project_id"), ("类别 facility", ("facility_name", "facility")),
                 ("乡镇 township", "township_code"), ("状态 status", "status"),
                 ("面积 area (m²)", "area_m2"))


class _Texts:
    """Distinct escaped texts of the popup table, indexed by how often they are used.

    :meth:`add` returns provisional indices; :meth:`resolve` orders the texts by use (the most
    used get the shortest indices) and gives, for each provisional index, the final index in
    ``s`` or, for a text used once, the text itself (inlined in the record: an index would only
    add to it).
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.index: dict[str, int] = {}
        self.counts: list[int] = []

    def add(self, values: Sequence[Any], *, escaped: bool = False) -> np.ndarray:
        """Provisional index of each value's escaped text; -1 for a missing or empty value."""
        codes, uniques = pd.factorize(pd.Series(list(values), dtype=object))
        table = np.empty(len(uniques) + 1, dtype=np.int64)
        table[-1] = -1  # factorize's code for a missing value
        for k, value in enumerate(uniques):
            text = value if escaped else ("" if is_missing(value) else escape(value))
            if text == "":
                table[k] = -1
                continue
            table[k] = self.index.setdefault(text, len(self.texts))
            if table[k] == len(self.texts):
                self.texts.append(text)
                self.counts.append(0)
        out = table[codes]
        used = np.bincount(out[out >= 0], minlength=len(self.texts))
        self.counts = (np.asarray(self.counts, dtype=np.int64) + used).tolist()
        return out

    def resolve(self) -> tuple[list[str], list[int | str]]:
        """``(s, lookup)``: the shared texts and where each provisional index went.

        For each provisional index its final index in ``s`` or, when the text is used once, the
        text.
        """
        counts = np.asarray(self.counts, dtype=np.int64)
        order = np.argsort(-counts, kind="stable")
        shared = [int(i) for i in order if counts[i] > 1]
        lookup: list[int | str] = list(self.texts)  # used once (or never): inline
        for new, old in enumerate(shared):
            lookup[old] = new
        return [self.texts[i] for i in shared], lookup


def _value(lookup: Sequence[int | str], i: int) -> int | str:
    return -1 if i < 0 else lookup[i]


def _column(gdf: pd.DataFrame, names: str | tuple[str, ...]) -> list[Any]:
    """Values of the first of ``names`` that the frame has, row by row (``None`` if none)."""
    for name in (names,) if isinstance(names, str) else names:
        if name in gdf.columns:
            if name == "facility_name" and "facility" in gdf.columns:  # as the detailed popup
                return [b if is_missing(a) else a
                        for a, b in zip(gdf[name], gdf["facility"], strict=True)]
            return list(gdf[name])
    return [None] * len(gdf)


#: a number in a message: the message's text without its numbers is shared by many sites
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SLOT = "\u0001"


def _template(message: Any) -> tuple[str, list[str]]:
    """Split a message into (escaped text with each number replaced by ``_SLOT``, the numbers)."""
    if is_missing(message):
        return "", []
    raw = format_value(message).replace(_SLOT, "\ufffd")
    numbers = _NUMBER.findall(raw)
    pieces = _NUMBER.split(raw)
    return _SLOT.join(escape(p) for p in pieces), numbers


def site_table(gdf: pd.DataFrame, findings: pd.DataFrame | None, *,
               extra_fields: Sequence[str]) -> dict[str, Any]:
    r"""Build the shared popup table of the sites in ``gdf`` (one record per row, in row order).

    Parameters
    ----------
    gdf
        The drawn project sites (``projects`` rows with geometry).
    findings
        The findings table, or ``None``; rows whose ``project_id`` is not in ``gdf`` are ignored.
    extra_fields
        Extra columns shown in the popup (``popup_fields["projects"]``).

    Returns
    -------
    dict
        Ready for :func:`~spatialplan.render._html.json_for_script`; every text is escaped:

        - ``s``: texts used more than once, the most used first;
        - ``labels``: the popup's field labels; ``rules``, ``statuses``: finding rule names
          and statuses;
        - ``r``: per site ``[name, verdict, [field values], [findings]]``, where a text is an
          index into ``s`` (-1: missing) or, when used once, the text itself; a finding is
          ``code`` (``rule * len(statuses) + status``) for a pass or not-applicable finding,
          else ``[code, measure, message, number, ...]`` with the message's numbers cut out
          (its text has ``\u0001`` where each number goes).
    """
    texts = _Texts()
    labels = [escape(label) for label, _ in _POPUP_FIELDS] + [escape(f) for f in extra_fields]
    names = texts.add(_column(gdf, "name"))
    verdicts = texts.add([format_value(v) for v in _column(gdf, "verdict")])
    fields = [texts.add(_column(gdf, col)) for _, col in _POPUP_FIELDS]
    fields += [texts.add(list(gdf[f])) for f in extra_fields]
    pids = [format_value(v) for v in _column(gdf, "project_id")]
    rules, statuses, by_project = _findings_entries(findings, set(pids), texts)
    s, lookup = texts.resolve()
    records = []
    for k in range(len(gdf)):
        entries = [e if isinstance(e, int)
                   else [e[0], _value(lookup, e[1]), _value(lookup, e[2]), *e[3]]
                   for e in by_project.get(pids[k], [])]
        records.append([_value(lookup, int(names[k])), _value(lookup, int(verdicts[k])),
                        [_value(lookup, int(col[k])) for col in fields], entries])
    return {"s": s, "r": records, "labels": labels, "rules": rules, "statuses": statuses}


def _findings_entries(findings: pd.DataFrame | None, pids: set[str], texts: _Texts
                      ) -> tuple[list[str], list[str], dict[str, list[Any]]]:
    """Collect the rule names, statuses (escaped) and, per project id, its findings in order.

    A finding is ``code`` for a pass or not-applicable finding, else ``(code, measure, message
    template, numbers)`` with provisional text indices.
    """
    if findings is None or len(findings) == 0 or "project_id" not in findings.columns:
        return [], [], {}
    f = findings.loc[findings["project_id"].astype(str).isin(pids)]
    if len(f) == 0:
        return [], [], {}
    n = len(f)

    def col(name: str) -> list[Any]:
        return list(f[name]) if name in f.columns else [None] * n

    rule_codes, rule_names = pd.factorize(pd.Series([format_value(r) for r in col("rule")]))
    status_text = [format_value(v) for v in col("status")]
    status_codes, status_names = pd.factorize(pd.Series(status_text))
    codes = rule_codes * len(status_names) + status_codes
    full = np.array([v not in _BRIEF_STATUSES for v in status_text], dtype=bool)
    sel = np.flatnonzero(full)
    measure, unit, message = col("measure"), col("unit"), col("message")
    measures = texts.add([f"{format_value(measure[i])} {format_value(unit[i])}".strip()
                          for i in sel])
    templates = [_template(message[i]) for i in sel]
    messages = texts.add([t for t, _ in templates], escaped=True)
    details = dict(zip(sel.tolist(), zip(measures.tolist(), messages.tolist(),
                                         [nums for _, nums in templates], strict=True),
                       strict=True))
    out: dict[str, list[Any]] = {}
    for k, pid in enumerate(f["project_id"].astype(str)):
        code = int(codes[k])
        out.setdefault(pid, []).append((code, *details[k]) if full[k] else code)
    return ([escape(r) for r in rule_names], [escape(v) for v in status_names], out)


def site_collection(geojson: Sequence[str], verdicts: Sequence[Any]) -> str:
    """Write the sites as one GeoJSON FeatureCollection text.

    Each feature's property ``v`` is its verdict (escaped); ``geojson`` holds each geometry's
    GeoJSON text (numbers only).
    """
    keys = [json_for_script(escape(format_value(v)), compact=True) for v in verdicts]
    features = ",".join(f'{{"type":"Feature","properties":{{"v":{k}}},"geometry":{g}}}'
                        for k, g in zip(keys, geojson, strict=True))
    return f'{{"type":"FeatureCollection","sp_role":"projects","features":[{features}]}}'


class SiteLayer(JSCSSMixin, Layer):
    """Leaflet layer of many project sites: canvas polygons, clustered markers, shared popup.

    Parameters
    ----------
    collection
        From :func:`site_collection`.
    table
        From :func:`site_table`.
    styles
        Verdict → Leaflet path style; key ``""`` for any other verdict.
    colors, labels
        Verdict → colour and → label (escaped) for popups, markers and clusters.
    name
        Layer-control name (escaped).
    """

    _template = Template("""
        {% macro header(this, kwargs) %}
        <style>
        .sp-site div { width: 10px; height: 10px; border-radius: 50%;
            border: 1px solid #222; opacity: 0.9; }
        .marker-cluster.sp-cluster div { color: #fff; font-weight: bold;
            text-shadow: 0 0 2px #000; }
        </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function(map) {
            var data = {{ this.collection }};
            var t = {{ this.table }};
            var styles = {{ this.styles }}, colors = {{ this.colors }};
            var labels = {{ this.labels }}, rank = {{ this.rank }};
            var S = t.s, R = t.r, ns = t.statuses.length;
            function text(x) { return typeof x === "number" ? (x < 0 ? "" : S[x]) : x; }
            function message(f) {
                var parts = text(f[2]).split("\u0001"), out = parts[0], i;
                for (i = 1; i < parts.length; i++) { out += (f[i + 2] || "") + parts[i]; }
                return out;
            }
            function verdict(r) { return text(r[1]); }
            function popup(k) {
                var r = R[k], v = verdict(r), rows = "", i, f, c, st;
                for (i = 0; i < r[2].length; i++) {
                    if (r[2][i] === -1) { continue; }
                    rows += "<tr><th style='text-align:left;padding-right:6px'>" + t.labels[i]
                        + "</th><td>" + text(r[2][i]) + "</td></tr>";
                }
                var html = "<div class='sp-project'><b>" + text(r[0]) + "</b><br>"
                    + "<span style='color:" + (colors[v] || "#444") + ";font-weight:bold'>"
                    + (labels[v] || v) + "</span><table class='sp-kv'>" + rows + "</table>";
                if (!r[3].length) { return html + "<p><i>no findings</i></p></div>"; }
                html += "<table class='sp-findings' style='border-collapse:collapse;"
                    + "font-size:11px'><tr><th>规则 rule</th><th>结果 status</th>"
                    + "<th>量 measure</th><th>说明 message</th></tr>";
                for (i = 0; i < r[3].length; i++) {
                    f = r[3][i];
                    c = typeof f === "number" ? f : f[0];
                    st = t.statuses[c % ns];
                    html += "<tr><td>" + t.rules[Math.floor(c / ns)] + "</td><td style='color:"
                        + (colors[st] || "#444") + ";font-weight:bold'>" + st + "</td>"
                        + "<td style='text-align:right'>"
                        + (typeof f === "number" ? "" : text(f[1])) + "</td><td>"
                        + (typeof f === "number" ? "" : message(f)) + "</td></tr>";
                }
                return html + "</table><div style='font-size:10px;color:#666'>"
                    + "通过/不适用的规则只列名称 (rules that pass or do not apply are listed "
                    + "by name; every finding: results.gpkg)</div></div>";
            }
            function tooltip(k) {
                var v = verdict(R[k]);
                return text(R[k][0]) + " (" + (labels[v] || v) + ")";
            }
            var group = L.featureGroup();
            var n = 0;
            var polygons = L.geoJSON(data, {
                renderer: L.canvas({padding: 0.5}),
                style: function(feature) {
                    return styles[feature.properties.v] || styles[""];
                },
                onEachFeature: function(feature, layer) { layer._spk = n++; }
            }).addTo(group);
            polygons.bindTooltip(function(layer) { return tooltip(layer._spk); },
                                 {sticky: true});
            function open(layer, latlng) {
                L.popup({maxWidth: 460}).setLatLng(latlng).setContent(popup(layer._spk))
                    .openOn(map);
            }
            polygons.on("click", function(e) { open(e.layer, e.latlng); });
            var icons = {};
            function icon(v) {
                if (!icons[v]) {
                    icons[v] = L.divIcon({className: "sp-site", iconSize: [12, 12],
                        html: "<div style='background:" + (colors[v] || "#808080") + "'></div>"});
                }
                return icons[v];
            }
            var markers = [];
            polygons.eachLayer(function(layer) {
                var v = layer.feature.properties.v;
                var marker = L.marker(layer.getBounds().getCenter(),
                                      {icon: icon(v), keyboard: false});
                marker._spk = layer._spk;
                marker._spv = v;
                markers.push(marker);
            });
            var clusters = L.markerClusterGroup({
                chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 60,
                disableClusteringAtZoom: 16,
                iconCreateFunction: function(cluster) {
                    var kids = cluster.getAllChildMarkers(), worst = "", w = 0, i, r;
                    for (i = 0; i < kids.length; i++) {
                        r = rank[kids[i]._spv] || 0;
                        if (r > w) { w = r; worst = kids[i]._spv; }
                    }
                    var count = cluster.getChildCount();
                    var size = count < 100 ? 32 : (count < 1000 ? 38 : 46);
                    return L.divIcon({
                        className: "marker-cluster sp-cluster", iconSize: L.point(size, size),
                        html: "<div style='background:" + (colors[worst] || "#808080")
                            + "'><span>" + count + "</span></div>"});
                }
            });
            clusters.addLayers(markers);
            clusters.on("click", function(e) { open(e.layer, e.layer.getLatLng()); });
            clusters.addTo(group);
            return group;
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    # folium's JSCSSMixin declares these as plain (mutable) list attributes and appends to them
    default_js = [("leaflet_markercluster", _CDN + "leaflet.markercluster.js")]  # noqa: RUF012
    default_css = [("leaflet_markercluster_css", _CDN + "MarkerCluster.css"),  # noqa: RUF012
                   ("leaflet_markercluster_default_css", _CDN + "MarkerCluster.Default.css")]

    def __init__(self, collection: str, table: Mapping[str, Any], *,
                 styles: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str],
                 labels: Mapping[str, str], name: str, show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "SpSites"
        self.collection = collection
        self.table = json_for_script(table, compact=True)
        self.styles = json_for_script(dict(styles), compact=True)
        self.colors = json_for_script(dict(colors), compact=True)
        self.labels = json_for_script({k: escape(v) for k, v in labels.items()}, compact=True)
        self.rank = json_for_script(_VERDICT_RANK, compact=True)
