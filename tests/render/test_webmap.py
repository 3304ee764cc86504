"""Web map: structure, escaping, GCJ-02 display shift, basemaps, size limits."""

from __future__ import annotations

import json
import logging
import re

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from _map_fixtures import CRS, HOSTILE, RAW_MARKERS, X0, Y0, layers, many_small_polygons

from spatialplan.core import _gcj02
from spatialplan.errors import CRSError, SpatialPlanError
from spatialplan.render._html import escape, json_for_script
from spatialplan.render.webmap import LAYER_NAMES, VERDICT_COLORS, explore, write_map

MAP_KEYS = ("townships", "redline", "farmland", "udb", "parcels", "conflicts", "projects",
            "findings")


def _map(data, **kwargs):
    return explore(**{k: data[k] for k in MAP_KEYS}, **kwargs)


def _html(m) -> str:
    return m.get_root().render()


def _geojson_layers(html: str) -> list[dict]:
    """The FeatureCollections embedded by folium (``..._add({...});``)."""
    decoder = json.JSONDecoder()
    out = []
    for match in re.finditer(r"_add\(\{", html):
        obj, _ = decoder.raw_decode(html, match.end() - 1)
        if obj.get("type") == "FeatureCollection":
            out.append(obj)
    return out


# ------------------------------------------------------------------------------- escaping


def test_escape_helper():
    for s in HOSTILE:
        e = escape(s)
        assert "<" not in e and ">" not in e and '"' not in e and "'" not in e
        assert "`" not in e and "${" not in e and "{{" not in e and "{%" not in e
    assert escape("乡镇𠀀😀") == "乡镇𠀀😀"  # CJK and astral characters kept
    assert escape("a\ud800b") == "a\ufffdb"  # lone surrogate cannot break UTF-8 output
    assert escape(None) == "" and escape(float("nan")) == ""
    assert "</" not in json_for_script({"x": "</script>"})


def test_hostile_values_never_raw(tmp_path):
    data = layers(hostile=True)
    data["parcels"][HOSTILE[0]] = HOSTILE[2]  # a hostile field *name* and value
    m = _map(data, popup_fields={"parcels": [HOSTILE[0]], "townships": ["code"]})
    path = write_map(m, tmp_path / "map.html")
    html = path.read_text(encoding="utf-8")
    for marker in RAW_MARKERS:
        assert marker not in html, marker
    # the popups carry the escaped text (json-escaped inside the script)
    collections = _geojson_layers(html)
    popups = " ".join(f["properties"].get("_p", "") + f["properties"].get("_t", "")
                      for fc in collections for f in fc["features"])
    assert "&lt;img src=x onerror=alert(1)&gt;" in popups
    assert "&lt;/script&gt;" in popups
    assert "&#96;&#36;&#123;alert(4)&#125;&#96;" in popups
    assert "乡镇𠀀😀 &amp; 名称" in popups
    # popup/tooltip HTML is bound by our own function, not folium's raw-HTML detail classes
    assert "GeoJsonPopup" not in html and "geojsondetail" not in html


def test_layer_names_and_controls():
    html = _html(_map(layers()))
    for role in ("townships", "redline", "farmland", "udb", "parcels", "conflicts", "projects"):
        assert json.dumps(escape(LAYER_NAMES[role]))[1:-1] in html or LAYER_NAMES[role] in html
    assert "L.control.layers" in html
    assert "L.Control.Measure" in html and "L.Control.FullScreen" in html.replace(
        "L.control.fullscreen", "L.Control.FullScreen")
    assert "L.control.scale({metric: true, imperial: false" in html
    assert "sp-legend" in html and "fitBounds" in html
    # only the needed properties are embedded (no geometry columns, no raw attributes)
    for fc in _geojson_layers(html):
        for feature in fc["features"]:
            assert set(feature["properties"]) <= {"_p", "_t", "_s"}


def test_projects_coloured_by_verdict_with_findings():
    data = layers()
    html = _html(_map(data))
    collections = _geojson_layers(html)
    proj = next(fc for fc in collections
            if any("XM001" in f["properties"].get("_p", "") for f in fc["features"]))
    by_verdict = {f["properties"].get("_s") for f in proj["features"]}
    assert by_verdict == {"pass", "review", "fail"}  # XM005 has no geometry: not drawn
    popup = next(f["properties"]["_p"] for f in proj["features"]
                 if "XM003" in f["properties"]["_p"])
    for rule in ("redline", "farmland", "udb", "landuse"):
        assert rule in popup
    assert "不符合" in popup and "1,500.00" in popup
    tooltip = next(f["properties"]["_t"] for f in proj["features"]
                   if "XM003" in f["properties"]["_p"])
    assert "农贸市场" in tooltip


def test_parcels_off_by_default_and_coordinates_rounded():
    html = _html(_map(layers(), precision=5))
    for fc in _geojson_layers(html):
        coords = re.findall(r"-?\d+\.\d+", json.dumps(fc["features"][0]["geometry"]))
        assert all(len(c.split(".")[1]) <= 5 for c in coords)
    parcels_name = escape(LAYER_NAMES["parcels"])
    # folium writes `show=False` layers without `.addTo(map)`: the layer is listed only
    assert parcels_name in html or json.dumps(parcels_name)[1:-1] in html


def test_display_does_not_touch_inputs():
    data = layers()
    before = data["farmland"].copy()
    _map(data, gaode=True)
    assert data["farmland"].crs == CRS
    assert data["farmland"].geom_equals(before).all()


def test_crs_required():
    t = layers()["townships"].set_crs(None, allow_override=True)
    with pytest.raises(CRSError):
        explore(townships=t)


# ------------------------------------------------------------------------------- GCJ-02


def test_gcj02_against_real_files(data_dir):
    wgs = gpd.read_file(data_dir / "huaxi_520111_wgs84.geojson").geometry.iloc[0]
    gcj = gpd.read_file(data_dir / "huaxi_520111_gcj02.geojson").geometry.iloc[0]
    shifted = _gcj02.geometry_to_gcj02(wgs)
    d_raw = np.subtract(gcj.centroid.coords[0], wgs.centroid.coords[0])
    d_new = np.subtract(gcj.centroid.coords[0], shifted.centroid.coords[0])
    assert d_raw[0] == pytest.approx(0.0037, abs=3e-4)
    assert d_raw[1] == pytest.approx(-0.0034, abs=3e-4)
    assert np.abs(d_new).max() < 2e-4  # ~20 m, vs ~500 m unshifted
    overlap_raw = wgs.symmetric_difference(gcj).area / gcj.area
    overlap_new = shifted.symmetric_difference(gcj).area / gcj.area
    assert overlap_new < overlap_raw / 10


def test_gcj02_outside_china_unchanged():
    lon, lat = _gcj02.wgs84_to_gcj02(np.array([2.35, 106.7]), np.array([48.85, 26.6]))
    assert lon[0] == 2.35 and lat[0] == 48.85
    assert lon[1] != 106.7


def test_gaode_shifts_overlays_for_display():
    data = layers()
    plain = _geojson_layers(_html(explore(townships=data["townships"])))
    gaode = _geojson_layers(_html(explore(townships=data["townships"], basemap="gaode")))
    a = shapely.geometry.shape(plain[0]["features"][0]["geometry"])
    b = shapely.geometry.shape(gaode[0]["features"][0]["geometry"])
    dx, dy = np.subtract(b.centroid.coords[0], a.centroid.coords[0])
    assert 0.002 < abs(dx) < 0.01 and 0.002 < abs(dy) < 0.01
    html = _html(explore(townships=data["townships"], gaode=True))
    assert "GCJ-02 display" in html and "autonavi" in html and "openstreetmap" not in html


# ------------------------------------------------------------------------------- basemaps


def test_tianditu_needs_key(monkeypatch, caplog):
    monkeypatch.delenv("TIANDITU_KEY", raising=False)
    with caplog.at_level(logging.INFO, logger="spatialplan.render.webmap"):
        html = _html(explore(basemap="tianditu"))
    assert "tianditu.gov.cn" not in html
    assert "openstreetmap" in html
    assert any("Tianditu key" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_tianditu_key_from_env_at_call_time(monkeypatch):
    monkeypatch.setenv("TIANDITU_KEY", "abc123")
    html = _html(explore(basemap="tianditu"))
    for layer in ("vec_w", "cva_w", "img_w", "cia_w"):
        assert layer in html
    assert "tk=abc123" in html
    html = _html(explore(tianditu_key="k\"<x>"))  # a hostile key is URL-quoted
    assert "tk=k%22%3Cx%3E" in html


def test_bad_basemap_options():
    with pytest.raises(SpatialPlanError):
        explore(basemap="google")
    with pytest.raises(SpatialPlanError):
        explore(basemap="tianditu", gaode=True)
    with pytest.raises(SpatialPlanError):
        explore(townships=layers()["townships"], popup_fields={"nope": ["x"]})


# ------------------------------------------------------------------------------- size


@pytest.mark.slow
def test_fifty_thousand_polygons_degrade(tmp_path, caplog):
    data = layers()
    farmland = many_small_polygons(50_000)
    with caplog.at_level(logging.WARNING, logger="spatialplan.render.webmap"):
        m = explore(townships=data["townships"], farmland=farmland)
    assert any("50,000 features" in r.getMessage() for r in caplog.records)
    path = write_map(m, tmp_path / "map.html")
    size = path.stat().st_size
    assert size < 3_000_000, size
    html = path.read_text(encoding="utf-8")
    assert "aggregated" in html


def test_simplification_budget_keeps_layer():
    t = layers()["townships"]
    ring = shapely.Point(450_000, 3_076_000).buffer(3000, quad_segs=20_000)  # 80k vertices
    gdf = gpd.GeoDataFrame({"feature_id": ["redline:0"]}, geometry=[ring], crs=CRS)
    html = _html(explore(townships=t, redline=gdf, max_vertices=2000))
    fc = next(c for c in _geojson_layers(html) if "redline" in json.dumps(c))
    n = len(fc["features"][0]["geometry"]["coordinates"][0])
    assert 4 < n <= 2000


def test_write_map_atomic_and_offline(tmp_path):
    path = write_map(_map(layers()), tmp_path / "map.html")
    html = path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]
    assert not re.search(r"<script[^>]+src=\"https?:", html)
    assert not re.search(r"<link[^>]+href=\"https?:", html)
    assert path.stat().st_size < 5_000_000
    cdn = write_map(_map(layers()), tmp_path / "cdn.html", assets="cdn").read_text("utf-8")
    assert "cdn.jsdelivr.net/npm/leaflet@1.9.3" in cdn
    assert "jquery" not in cdn.lower() and "bootstrap" not in cdn.lower()


def test_explore_returns_map_for_notebooks():
    m = explore(projects=layers()["projects"])
    assert isinstance(m, folium.Map)
    assert "<iframe" in m._repr_html_()


# ------------------------------------------------------------------------------- many sites

VERDICTS = ("pass", "review", "fail", "error")
RULES = ("township", "redline", "farmland", "udb", "landuse", "schedule")


def many_sites(n: int) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """``n`` project sites (30-120 m boxes, one per 150 m cell) with six findings each; the
    non-pass findings carry messages with numbers, like the real rules' messages."""
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x = X0 + 200 + (i % side) * 150.0
    y = Y0 + 200 + (i // side) * 150.0
    w = 30 + (i * 7) % 90
    verdicts = [VERDICTS[k % 4] for k in range(n)]
    projects = gpd.GeoDataFrame(
        {"project_id": [f"XM{k:06d}" for k in range(n)],
         "feature_id": [f"projects:{k}" for k in range(n)],
         "name": [f"项目{k}" for k in range(n)], "township_code": "520123001",
         "facility": "080602", "facility_name": "卫生院", "status": "planned",
         "verdict": verdicts, "reasons": "", "area_m2": (w * w).astype(float)},
        geometry=shapely.box(x, y, x + w, y + w), crs=CRS)
    rows = []
    for k, verdict in enumerate(verdicts):
        for j, rule in enumerate(RULES):
            status = verdict if j == k % len(RULES) else "pass"
            area = 10.0 * k + j
            rows.append({"project_id": f"XM{k:06d}", "rule": rule, "status": status,
                         "measure": area, "unit": "m2",
                         "message": f"占用 {area:.1f} m²（{area * 0.0015:.2f} 亩）/ occupies "
                                    f"{area:.1f} m2 ({rule})"})
    return projects, pd.DataFrame(rows)


def _site_payload(html: str) -> tuple[dict, dict]:
    """The compact site layer's FeatureCollection and popup table from a map's HTML."""
    decoder = json.JSONDecoder()
    start = html.index('{"type":"FeatureCollection","sp_role":"projects"')
    collection, _ = decoder.raw_decode(html, start)
    table_at = html.index("var t = ", start) + len("var t = ")
    table, _ = decoder.raw_decode(html, table_at)
    return collection, table


def _text(table: dict, x) -> str:
    return x if isinstance(x, str) else ("" if x < 0 else table["s"][x])


def _decode_findings(table: dict, record: list) -> list[tuple[str, str, str, str]]:
    """(rule, status, measure, message) of a site's findings, decoded as the page's
    JavaScript does it."""
    ns = len(table["statuses"])
    out = []
    for f in record[3]:
        code = f if isinstance(f, int) else f[0]
        rule, status = table["rules"][code // ns], table["statuses"][code % ns]
        if isinstance(f, int):
            out.append((rule, status, "", ""))
            continue
        parts = _text(table, f[2]).split("\u0001")
        numbers = f[3:]
        message = parts[0] + "".join(num + part for num, part in zip(numbers, parts[1:],
                                                                       strict=True))
        out.append((rule, status, _text(table, f[1]), message))
    return out


def _empty_map_size(tmp_path) -> int:
    return write_map(explore(), tmp_path / "empty.html").stat().st_size


def test_many_sites_compact_layer_holds_every_site(tmp_path):
    n = 5000
    projects, findings = many_sites(n)
    t = layers()["townships"]
    path = write_map(explore(townships=t, projects=projects, findings=findings),
                     tmp_path / "map.html")
    html = path.read_text(encoding="utf-8")
    # byte budget: the 25 MB for 50,000 sites, pro rata, above an empty map's size
    # (Leaflet and its plugins inlined; the detailed layer took ~13 kB a site)
    budget = 25_000_000 * n / 50_000
    assert path.stat().st_size - _empty_map_size(tmp_path) < budget
    collection, table = _site_payload(html)
    assert len(collection["features"]) == n == len(table["r"])
    # every verdict drawn, each with its own colour
    assert {f["properties"]["v"] for f in collection["features"]} == set(VERDICTS)
    styles = json.loads(re.search(r"var styles = (\{.*?\}\}), colors", html).group(1))
    for verdict, color in VERDICT_COLORS.items():
        assert styles[verdict]["fillColor"] == color
    # no per-site popup HTML, no per-site folium objects; markers clustered (bundled plugin)
    assert "sp-findings'" not in html.split("var t = ")[1].split("function")[0]
    assert "L.markerClusterGroup" in html and "leaflet.markercluster-1.1.0.js" in html
    assert not re.search(r"<script[^>]+src=\"https?:", html)
    # the popup table gives back every site's name, id and every non-pass message exactly
    by_id = findings.groupby("project_id", sort=False)
    for k in (0, 1, 2, 3, 1234, n - 1):
        record = table["r"][k]
        assert _text(table, record[0]) == f"项目{k}"
        assert _text(table, record[1]) == VERDICTS[k % 4]
        assert _text(table, record[2][0]) == f"XM{k:06d}"
        decoded = _decode_findings(table, record)
        expected = by_id.get_group(f"XM{k:06d}")
        assert [d[:2] for d in decoded] == list(zip(expected["rule"], expected["status"],
                                                    strict=True))
        for d, (_, row) in zip(decoded, expected.iterrows(), strict=True):
            if row["status"] != "pass":
                assert d[3] == escape(row["message"]) and d[2] == f"{row['measure']:,.2f} m2"
            else:
                assert d[2:] == ("", "")


def test_many_sites_threshold():
    projects, findings = many_sites(30)
    at = _html(explore(projects=projects, findings=findings, max_sites=30))
    above = _html(explore(projects=projects, findings=findings, max_sites=29))
    assert "sp_role" not in at and "markerClusterGroup" not in at
    assert len(_geojson_layers(at)[0]["features"]) == 60  # polygon + marker per site
    assert "sp_role" in above and "8+X" in above and "clustered" in above  # legend note
    collection, _ = _site_payload(above)
    assert len(collection["features"]) == 30


def test_many_sites_hostile_values_escaped(tmp_path):
    data = layers(hostile=True)
    data["projects"]["note"] = [HOSTILE[0], HOSTILE[1], HOSTILE[2], HOSTILE[4], HOSTILE[3]]
    data["findings"].loc[data["findings"]["status"] != "pass", "message"] = (
        HOSTILE[1] + " 12.5 m² " + HOSTILE[3] + "\u0001")
    m = _map(data, max_sites=1, popup_fields={"projects": ["note"]})
    html = write_map(m, tmp_path / "map.html").read_text(encoding="utf-8")
    for marker in RAW_MARKERS:
        assert marker not in html, marker
    _, table = _site_payload(html)
    texts = [_text(table, x) for r in table["r"] for x in [r[0], *r[2]]]
    assert "&lt;img src=x onerror=alert(1)&gt;" in texts  # a name and a popup field
    assert "&#96;&#36;&#123;alert(4)&#125;&#96;&#123;&#123; 7*7 &#125;&#125;&#123;% raw %&#125;" \
        in texts
    assert table["labels"][-1] == "note"
    messages = {d[3] for r in table["r"] for d in _decode_findings(table, r) if d[3]}
    assert messages == {escape(HOSTILE[1] + " 12.5 m² " + HOSTILE[3] + "\ufffd")}
    assert all("<" not in t and ">" not in t for t in table["s"])


def test_demo_sized_map_keeps_per_site_popups():
    # below max_sites (the demo: 41 sites) every site keeps its own popup with every finding
    data = layers()
    collections = _geojson_layers(_html(_map(data)))
    proj = next(fc for fc in collections
            if any("XM001" in f["properties"].get("_p", "") for f in fc["features"]))
    assert len(proj["features"]) == 8  # 4 drawn sites: polygon and marker each
    for feature in proj["features"]:
        popup = feature["properties"]["_p"]
        assert "sp-findings" in popup
        assert all(f"<td>{rule}</td>" in popup for rule in ("redline", "farmland", "udb",
                                                             "landuse"))


def test_many_conflicts_aggregated_by_kind(caplog):
    cells = many_small_polygons(6000)
    kinds = np.where(np.arange(6000) % 3 == 0, "boundary_noise", "conflict")
    conflicts = gpd.GeoDataFrame(
        {"layer_a": "redline", "layer_b": "farmland", "feature_a": "redline:0",
         "feature_b": cells["feature_id"], "township_code": "520123001", "area_m2": 64.0,
         "kind": kinds}, geometry=cells.geometry, crs=CRS)
    with caplog.at_level(logging.WARNING, logger="spatialplan.render.webmap"):
        html = _html(explore(townships=layers()["townships"], conflicts=conflicts,
                             max_features=500))
    assert any("6,000 features" in r.getMessage() for r in caplog.records)
    fc = [c for c in _geojson_layers(html) if "Line conflicts" in json.dumps(c)
          or "aggregated" in json.dumps(c)]
    features = [f for c in fc for f in c["features"] if "aggregated" in f["properties"]["_t"]]
    assert 0 < len(features) <= 500
    # both kinds kept apart: the boundary-noise cells keep their own style
    assert {f["properties"].get("_s") for f in features} == {"boundary_noise", None}
    assert sum(int(re.search(r"· ([\d,]+) features", f["properties"]["_t"]).group(1)
                   .replace(",", "")) for f in features) == 6000


# ------------------------------------------------------------------------------- villages


def _villages_and_reach():
    from shapely.geometry import LineString, Point

    villages = gpd.GeoDataFrame(
        {"village_code": ["V1", "V2", "V3"], "name": [HOSTILE[0], "二村", HOSTILE[1]]},
        geometry=[Point(X0 + 100, Y0 + 50), shapely.box(X0 + 400, Y0, X0 + 500, Y0 + 100),
                  Point(X0 + 900, Y0 + 900)], crs=CRS)
    rows = []
    for code, name, school, clinic in (("V1", HOSTILE[0], 400.0, 900.0),
                                       ("V2", "二村", 700.0, 12_000.0),
                                       ("V3", HOSTILE[1], None, None)):
        for facility, dist, limit in (("school", school, 5000.0),
                                      ("health_center", clinic, 10_000.0)):
            rows.append({"village_code": code, "name": name, "township_code": "T1",
                         "facility": facility, "project_id": None if dist is None else "P1",
                         "network_m": dist, "straight_m": dist, "limit_m": limit,
                         "within_limit": dist is not None and dist <= limit,
                         "reason": "no road connection to any serving project"
                         if dist is None else None,
                         "geometry": None if dist is None else
                         LineString([(X0 + 100, Y0 + 50), (X0 + 100, Y0), (X0 + 300, Y0)])})
    return villages, gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def test_villages_coloured_by_types_reached_with_escaped_popups(tmp_path):
    villages, reach = _villages_and_reach()
    m = explore(villages=villages, village_reach=reach)
    html = write_map(m, tmp_path / "map.html").read_text(encoding="utf-8")
    for marker in RAW_MARKERS:
        assert marker not in html, marker
    fcs = _geojson_layers(_html(m))
    points = next(fc for fc in fcs if fc["features"][0]["geometry"]["type"] == "Point")
    by_code = {re.search(r"\((V\d)\)", f["properties"]["_t"]).group(1): f["properties"]
               for f in points["features"]}
    # V1 reaches both types (green), V2 one of two (yellow), V3 none: not joined (red)
    assert [by_code[c]["_s"] for c in ("V1", "V2", "V3")] == ["#2ca02c", "#ffd92f", "#d62728"]
    assert "2 / 2" in by_code["V1"]["_p"] and "学校 school" in by_code["V1"]["_p"]
    assert "12,000 m / 10,000 m" in by_code["V2"]["_p"]
    assert "no road connection to any serving project" in by_code["V3"]["_p"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in by_code["V1"]["_p"]
    # the paths: a layer of their own, off until switched on; the unconnected have none
    paths = next(fc for fc in fcs if fc["features"][0]["geometry"]["type"] == "LineString")
    assert len(paths["features"]) == 4
    assert {f["properties"]["_s"] for f in paths["features"]} == {"in", "out"}
    assert "Village paths to the nearest project" in html and "0 / 2 (1)" in html


def test_many_village_paths_are_left_to_the_geopackage():
    villages, reach = _villages_and_reach()
    html = _html(explore(villages=villages, village_reach=reach, max_features=3))
    assert "6 &gt; 3, not drawn" in html
    fcs = _geojson_layers(html)
    assert not any(fc["features"] and fc["features"][0]["geometry"]["type"] == "LineString"
                   for fc in fcs)


def test_a_village_popup_shows_the_travel_time_when_there_is_one():
    villages, reach = _villages_and_reach()
    reach = reach.assign(network_min=[5.4, 9.0, 3.0, 30.0, None, None],
                         limit_min=[20.0, float("nan")] * 3)
    fcs = _geojson_layers(_html(explore(villages=villages, village_reach=reach)))
    points = next(fc for fc in fcs if fc["features"][0]["geometry"]["type"] == "Point")
    popup = next(f["properties"]["_p"] for f in points["features"]
                 if "(V1)" in f["properties"]["_t"])
    assert "400 m / 5,000 m · 5.4 min / 20.0 min" in popup
    # the clinic has no minute limit: its time alone
    assert "900 m / 10,000 m · 9.0 min ✓" in popup
