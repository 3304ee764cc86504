"""scripts/output_hashes.py: table hashes by content, and the comparison of two output folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "output_hashes.py"


def _script():
    spec = importlib.util.spec_from_file_location("output_hashes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder(path: Path, *, value: float, x: float = 0.0) -> Path:
    path.mkdir()
    gdf = gpd.GeoDataFrame({"project_id": ["P1"], "area_m2": [value]},
                           geometry=[shapely.box(x, 0, x + 1, 1)], crs="EPSG:4545")
    pyogrio.write_dataframe(gdf, path / "results.gpkg", layer="projects")
    (path / "schedule.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    return path


def test_same_tables_hash_the_same_and_changes_are_found(tmp_path, capsys):
    hashes = _script()
    a = _folder(tmp_path / "a", value=1.5)
    b = _folder(tmp_path / "b", value=1.5)  # another file, other GeoPackage timestamps
    assert hashes.output_hashes(a) == hashes.output_hashes(b)
    assert hashes.main([str(a), str(b)]) == 0
    c = _folder(tmp_path / "c", value=1.5000001)
    d = _folder(tmp_path / "d", value=1.5, x=1e-6)
    assert hashes.main([str(a), str(c)]) == 1
    assert "DIFF  results.gpkg:projects" in capsys.readouterr().out
    assert hashes.output_hashes(a)["results.gpkg:projects"] != \
        hashes.output_hashes(d)["results.gpkg:projects"]
    assert set(hashes.output_hashes(a)) == {"results.gpkg:projects", "schedule.csv"}
