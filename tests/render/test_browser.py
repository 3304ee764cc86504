"""map.html in a real browser: headless Chromium (Debian package ``chromium``).

Not skipped when Chromium is missing: CI installs it, so a missing browser is a failure with
a message saying how to install it. Offline is fine: Leaflet is inlined, only tiles are blank.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _map_fixtures import HOSTILE, layers

from spatialplan.render.webmap import LAYER_NAMES, explore, write_map

pytestmark = pytest.mark.browser

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str:
    env = os.environ.get("SPATIALPLAN_CHROMIUM")
    found = env or next((shutil.which(c) for c in CANDIDATES if shutil.which(c)), None)
    if not found:
        pytest.fail("headless Chromium not found: install it (Debian/Ubuntu: "
                    "apt-get install -y chromium) or set SPATIALPLAN_CHROMIUM=/path/to/chrome")
    return found


def _run(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--window-size=1400,900",
           "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console_errors(stderr: str) -> list[str]:
    lines = [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    return [ln for ln in lines if re.search(r"Uncaught|Error|is not defined", ln)]


@pytest.fixture(scope="module")
def map_file(tmp_path_factory) -> Path:
    data = layers(hostile=True)
    m = explore(**{k: data[k] for k in ("townships", "redline", "farmland", "udb", "parcels",
                                        "conflicts", "projects", "findings")})
    return write_map(m, tmp_path_factory.mktemp("map") / "map.html")


def test_map_opens_without_javascript_errors(map_file, tmp_path):
    result = _run(tmp_path, map_file.as_uri(), "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not _console_errors(result.stderr), _console_errors(result.stderr)
    dom = result.stdout
    for role in ("townships", "redline", "farmland", "udb", "parcels", "conflicts", "projects"):
        assert LAYER_NAMES[role] in dom, role
    assert "leaflet-control-layers" in dom and "leaflet-control-scale" in dom
    assert "leaflet-control-measure" in dom and "fullscreen" in dom.lower()
    assert "sp-legend" in dom
    # hostile township names are shown as text in the permanent labels, not as elements
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert 'onerror="alert' not in dom and '<img src="x"' not in dom  # no injected element
    assert HOSTILE[5].split()[0] in dom


def test_detects_javascript_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>notAFunction();</script></body></html>")
    result = _run(tmp_path, bad.as_uri(), "--dump-dom")
    assert _console_errors(result.stderr), "the console check must see an Uncaught error"


def test_screenshot(map_file, tmp_path):
    shot = tmp_path / "map.png"
    result = _run(tmp_path, map_file.as_uri(), f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("SPATIALPLAN_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_many_sites_layer_clusters_and_opens_popups(tmp_path):
    """The compact site layer (more sites than ``max_sites``): no errors, clustered markers,
    and a click on a site opens the shared popup with its escaped texts."""
    data = layers(hostile=True)
    m = explore(**{k: data[k] for k in ("townships", "projects", "findings")}, max_sites=1)
    path = write_map(m, tmp_path / "map.html")
    html = path.read_text(encoding="utf-8")
    name = re.search(r"var (sp_sites_\w+) = \(function", html).group(1)
    probe = f"""<script>
    window.addEventListener("load", function() {{
        var polygons = {name}.getLayers().filter(function(l) {{
            return !l.getAllChildMarkers;
        }})[0];
        var first = polygons.getLayers()[0];
        polygons.fire("click", {{latlng: first.getBounds().getCenter(), layer: first}});
    }});
    </script></body>"""
    path.write_text(html.replace("</body>", probe), encoding="utf-8")
    result = _run(tmp_path, path.as_uri(), "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not _console_errors(result.stderr), _console_errors(result.stderr)
    dom = result.stdout
    # markers or clusters are drawn (elements, not the page's CSS)
    assert re.search(r'class="leaflet-marker-icon (sp-site|marker-cluster sp-cluster)', dom)
    start = dom.index('<div class="leaflet-popup-content"')
    popup = dom[start:dom.index("leaflet-popup-tip-container", start)]
    assert "sp-findings" in popup and "<td>udb</td>" in popup
    assert "&lt;img src=x onerror=alert(1)&gt;" in popup  # the hostile name, as text
    assert 'onerror="alert' not in dom and '<img src="x"' not in dom
