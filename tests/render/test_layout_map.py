"""Layout map frame: labels never collide, verdict colours, numeric scale, town-seat inset."""

from __future__ import annotations

import itertools
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely
from _map_fixtures import CRS, X0, Y0, layers
from matplotlib.colors import to_hex
from matplotlib.text import Annotation

from spatialplan.render._placement import boxes_overlap, place_labels
from spatialplan.render.layout import VERDICT_COLORS, layout_figure, nice_scale


def _projects(geoms, verdicts=None, code="520123001"):
    n = len(geoms)
    verdicts = verdicts or ["pass", "review", "fail", "error"] * (n // 4 + 1)
    return gpd.GeoDataFrame({
        "project_id": [f"XM{i:03d}" for i in range(n)],
        "name": [f"项目{i}" for i in range(n)],
        "township_code": [code] * n,
        "facility_name": ["卫生院"] * n,
        "verdict": verdicts[:n]}, geometry=list(geoms), crs=CRS)


def _fig(projects, code="520123001", **kwargs):
    data = layers()
    opts = {"townships": data["township_stats"], "redline": data["redline"],
            "farmland": data["farmland"], "udb": data["udb"], "parcels": data["parcels"],
            "dpi": 60, "date": "2025-01-31"}
    opts.update(kwargs)
    return layout_figure(code, projects=projects, **opts)


def _axes(fig):
    """Every map frame: the figure's axes and their insets."""
    return [a for ax in fig.axes for a in (ax, *ax.child_axes)]


def _inset(fig):
    found = [ax for ax in _axes(fig) if ax.get_gid() == "sp-inset"]
    assert len(found) <= 1
    return found[0] if found else None


def _labels(ax):
    """The site numbers drawn in ``ax`` and their boxes in pixels (the box patch if any)."""
    renderer = ax.figure.canvas.get_renderer()
    out = {}
    for t in ax.texts:
        if isinstance(t, Annotation) and t.get_text().isdigit():
            t.update_positions(renderer)
            t.update_bbox_position_size(renderer)
            patch = t.get_bbox_patch()
            box = (patch or t).get_window_extent(renderer)
            assert t.get_text() not in out, f"site {t.get_text()} numbered twice"
            out[t.get_text()] = (t, np.array(box.extents))
    return out


def _assert_no_collision(fig):
    fig.canvas.draw()
    labelled = {}
    pt = fig.dpi / 72
    for ax in _axes(fig):
        found = _labels(ax)
        frame = np.array(ax.get_window_extent().extents)
        for no, (t, box) in found.items():
            assert no not in labelled, f"site {no} numbered in two frames"
            assert (box[:2] >= frame[:2] - 0.5).all() and (box[2:] <= frame[2:] + 0.5).all(), (
                f"label {no} outside its map frame")
            # a number moved away from its site points at it with a leader line
            x, y = ax.transData.transform(t.xy)
            gap = np.hypot(max(box[0] - x, 0, x - box[2]), max(box[1] - y, 0, y - box[3]))
            assert gap < 6 * pt or t.arrow_patch is not None, f"label {no}: no leader"
        for (a, (_, ba)), (b, (_, bb)) in itertools.combinations(found.items(), 2):
            assert not boxes_overlap(ba, bb), f"labels {a} and {b} overlap"
        labelled.update(found)
    return labelled


@pytest.fixture(scope="module")
def demo_figures():
    from spatialplan.core._resources import demo_dir
    from spatialplan.io.read import read_plan
    from spatialplan.pipeline.run import run_check
    from spatialplan.pipeline.write import check_layouts

    plan = read_plan(demo_dir() / "plan.toml")
    result = run_check(plan)
    figs = check_layouts(plan, result)
    mapped = {code: set(map(str, range(1, 1 + int(((result.projects["township_code"] == code)
                                                   & result.projects.geometry.notna()).sum()))))
              for code in plan.layers["townships"].data["code"]}
    return figs, mapped


def test_demo_labels_never_collide(demo_figures):
    figs, mapped = demo_figures
    assert len(figs) == len(mapped) == 4
    for fig, numbers in zip(figs, mapped.values(), strict=True):
        labelled = _assert_no_collision(fig)  # today "5" and "6" print as "56" on page 1
        assert set(labelled) == numbers  # every mapped site numbered exactly once
    # 示范镇: 9 of its 11 sites sit in the town seat, numbered in the enlarged inset
    inset = _inset(figs[0])
    assert inset is not None and len(_labels(inset)) >= 6


def test_crafted_cluster_labels_never_collide_and_get_an_inset():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 300, size=(30, 2))
    sites = [shapely.box(X0 + 2800 + x, Y0 + 2200 + y, X0 + 2830 + x, Y0 + 2230 + y)
             for x, y in xy]
    fig = _fig(_projects(sites))
    inset = _inset(fig)
    assert inset is not None
    labelled = _assert_no_collision(fig)
    assert set(labelled) == {str(i) for i in range(1, 31)}
    assert set(_labels(inset)) == set(labelled)  # all in the inset
    assert any(t.arrow_patch is not None for t, _ in labelled.values())  # crowded: leaders


def test_close_sites_without_inset_are_numbered_apart():
    # three sites 15 m apart (under a millimetre on paper): too few for an inset
    sites = [shapely.Point(X0 + 3000 + 15 * i, Y0 + 2500) for i in range(3)]
    fig = _fig(_projects(sites))
    assert _inset(fig) is None
    assert set(_assert_no_collision(fig)) == {"1", "2", "3"}


def test_spread_sites_get_no_inset():
    corners = [(300, 300), (5500, 300), (300, 4500), (5500, 4500), (3000, 2500)]
    sites = [shapely.box(X0 + x, Y0 + y, X0 + x + 80, Y0 + y + 60) for x, y in corners]
    fig = _fig(_projects(sites))
    assert _inset(fig) is None
    assert set(_assert_no_collision(fig)) == {str(i) for i in range(1, 6)}


def _site_artists(fig, no):
    ax = fig.axes[0]
    found = [a for a in ax.get_children()
             if (a.get_gid() or "") in (f"sp-site-{no}", f"sp-site-{no}-marker")]
    assert found, f"site {no} not drawn"
    return found


def _colours(artist):
    """Every colour an artist paints with, as hex without alpha."""
    out = set()
    for getter in ("get_facecolor", "get_edgecolor", "get_color", "get_markerfacecolor",
                   "get_markeredgecolor"):
        if hasattr(artist, getter):
            value = getattr(artist, getter)()
            values = value if isinstance(value, np.ndarray) and value.ndim == 2 else [value]
            out |= {to_hex(v, keep_alpha=False) for v in values
                    if not (isinstance(v, str) and v == "none")}
    return out


def test_small_point_and_line_sites_keep_their_verdict_colour():
    geoms = [
        shapely.Point(X0 + 1000, Y0 + 1000),                                  # 1 point, pass
        shapely.LineString([(X0 + 2000, Y0 + 1500), (X0 + 4500, Y0 + 1800)]),  # 2 road, review
        shapely.box(X0 + 3000, Y0 + 3000, X0 + 3012, Y0 + 3012),              # 3 tiny, fail
        shapely.box(X0 + 4000, Y0 + 300, X0 + 4900, Y0 + 900),                # 4 large, error
    ]
    fig = _fig(_projects(geoms, ["pass", "review", "fail", "error"]))
    for no, verdict in enumerate(["pass", "review", "fail", "error"], start=1):
        colour = VERDICT_COLORS[verdict]
        artists = _site_artists(fig, no)
        painted = set().union(*(_colours(a) for a in artists))
        assert colour in painted, (no, painted)
        assert "#000000" not in painted, f"site {no} drawn in plain black"
    # the tiny polygon (0.1 mm on paper) also gets a marker in its colour
    marker = [a for a in _site_artists(fig, 3) if a.get_gid() == "sp-site-3-marker"]
    assert marker and to_hex(marker[0].get_markerfacecolor()) == VERDICT_COLORS["fail"]
    # the point is a marker, the road a line, both in the verdict colour
    assert to_hex(_site_artists(fig, 1)[0].get_markerfacecolor()) == VERDICT_COLORS["pass"]
    road = [a for a in _site_artists(fig, 2) if a.get_gid() == "sp-site-2"]
    assert to_hex(road[0].get_color()) == VERDICT_COLORS["review"]


@pytest.mark.parametrize("paper", ["A3", "A4"])
def test_numeric_scale_matches_the_printed_map(paper):
    fig = _fig(_projects([shapely.box(X0 + 3000, Y0 + 2000, X0 + 3100, Y0 + 2100)]),
               paper=paper)
    ax = fig.axes[0]
    text = next(t.get_text() for t in ax.texts if t.get_gid() == "sp-scale-ratio")
    n = int(re.search(r"1:([\d,]+)", text).group(1).replace(",", ""))
    assert n == nice_scale(n)  # a round scale
    pos = ax.get_position(original=False)
    width_m = pos.width * fig.get_size_inches()[0] * 0.0254
    x0, x1 = ax.get_xlim()
    assert (x1 - x0) / width_m == pytest.approx(n, rel=1e-6)
    y0, y1 = ax.get_ylim()
    height_m = pos.height * fig.get_size_inches()[1] * 0.0254
    assert (y1 - y0) / height_m == pytest.approx(n, rel=1e-6)
    # the whole township is on the map
    assert x0 < X0 and x1 > X0 + 6000 and y0 < Y0 and y1 > Y0 + 5000


def test_inset_has_its_own_scale():
    rng = np.random.default_rng(3)
    sites = [shapely.Point(X0 + 3000 + x, Y0 + 2500 + y)
             for x, y in rng.uniform(0, 200, size=(8, 2))]
    fig = _fig(_projects(sites))
    inset = _inset(fig)
    text = next(t.get_text() for t in inset.texts if t.get_gid() == "sp-inset-scale")
    n_in = int(re.search(r"1:([\d,]+)", text).group(1).replace(",", ""))
    pos = inset.get_position(original=False)
    width_m = pos.width * fig.get_size_inches()[0] * 0.0254
    x0, x1 = inset.get_xlim()
    assert (x1 - x0) / width_m == pytest.approx(n_in, rel=1e-6)
    main = next(t.get_text() for t in fig.axes[0].texts if t.get_gid() == "sp-scale-ratio")
    assert n_in * 1.5 <= int(re.search(r"1:([\d,]+)", main).group(1).replace(",", ""))


def test_place_labels_separates_identical_anchors():
    anchors = np.full((12, 2), 100.0)
    rel = np.tile([-6.0, -5.0, 6.0, 5.0], (12, 1))
    _, boxes = place_labels(anchors, rel, frame=(0, 0, 400, 400))
    for a, b in itertools.combinations(range(12), 2):
        assert not boxes_overlap(boxes[a], boxes[b])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 400).all()


def test_a_site_outside_its_township_is_on_the_map():
    # a site of township 1 lying 3 km east of its outline (data errors happen)
    far = shapely.box(X0 + 9000, Y0 + 2000, X0 + 9100, Y0 + 2100)
    fig = _fig(_projects([shapely.box(X0 + 1000, Y0 + 1000, X0 + 1100, Y0 + 1100), far]))
    x0, x1 = fig.axes[0].get_xlim()
    assert x0 < X0 + 1000 and x1 > X0 + 9100
    labelled = _assert_no_collision(fig)
    assert set(labelled) == {"1", "2"}
