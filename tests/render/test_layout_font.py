"""The layout map's CJK font: the bundled Noto Sans SC works with every system font hidden."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest
from _map_fixtures import layers
from matplotlib import font_manager

from spatialplan.cli import main
from spatialplan.core._resources import demo_dir
from spatialplan.errors import OutputError
from spatialplan.render import layout
from spatialplan.render.layout import bundled_cjk_font, find_cjk_font, layout_figure, write_layout


@pytest.fixture
def no_system_fonts(monkeypatch):
    """matplotlib's font manager as on a fresh machine: only matplotlib's own fonts."""
    own = Path(matplotlib.get_data_path()).resolve()
    manager = font_manager.fontManager
    kept = [f for f in manager.ttflist if Path(f.fname).resolve().is_relative_to(own)]
    assert kept  # DejaVu Sans and friends
    monkeypatch.setattr(manager, "ttflist", kept)
    manager._findfont_cached.cache_clear()
    yield
    manager._findfont_cached.cache_clear()


def _fig(**kwargs):
    data = layers()
    return layout_figure("520123001", townships=data["township_stats"],
                         redline=data["redline"], farmland=data["farmland"], udb=data["udb"],
                         parcels=data["parcels"], projects=data["projects"], dpi=50,
                         date="2025-01-31", **kwargs)


def test_bundled_font_is_installed_with_spatialplan():
    path = bundled_cjk_font()
    assert path is not None and path.name == "NotoSansSC-Regular.otf"
    assert path.stat().st_size > 1_000_000  # the whole font, not a stub


def test_layout_renders_with_system_fonts_hidden(no_system_fonts, tmp_path, caplog):
    assert not any("CJK" in f.name or "SC" in f.name.split()
                   for f in font_manager.fontManager.ttflist)
    fig = _fig()  # today's code: OutputError "no Chinese (CJK) font found"
    title = next(t for t in fig.findobj(matplotlib.text.Text) if t.get_gid() == "sp-title")
    used = font_manager.findfont(title.get_fontproperties(), fallback_to_default=False)
    assert Path(used) == bundled_cjk_font()
    # pytest turns warnings into errors: a "Glyph ... missing" warning (tofu) fails here
    out = write_layout(fig, tmp_path / "layout.pdf", tmp_path / "layout.png")
    pdf = out["pdf"].read_bytes()
    # the font is embedded (a subset, as Type 3 glyph programs), not merely named
    assert re.search(rb"/BaseFont\s*/[A-Z]{6}\+NotoSansSC-Regular", pdf)
    assert b"/CharProcs" in pdf
    assert out["png"].read_bytes()[:4] == b"\x89PNG"
    # the regular-only font also serves bold text, without a findfont warning per text size
    assert not [r for r in caplog.records if "font weight" in r.getMessage()]


def test_pdf_font_type_3_even_if_the_user_asks_for_42(no_system_fonts, tmp_path):
    # Type 42 would label the CFF outlines of the OpenType font as TrueType (a broken PDF)
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        pdf = write_layout(_fig(), tmp_path / "l.pdf")["pdf"].read_bytes()
    assert b"/FontFile2" not in pdf and b"/CharProcs" in pdf


def test_system_font_preferred_to_the_bundled_one(no_system_fonts, monkeypatch):
    # stand-in for an installed system CJK font: the bundled package's serif face
    serif = bundled_cjk_font().with_name("NotoSerifSC-Regular.otf")
    font_manager.fontManager.addfont(str(serif))
    monkeypatch.setattr(layout, "CJK_FAMILIES", ("Noto Serif SC",))
    assert find_cjk_font() == "Noto Serif SC"
    monkeypatch.setattr(layout, "CJK_FAMILIES", ("Not Installed Sans",))
    assert find_cjk_font() == "Noto Sans SC"


def test_no_font_at_all_is_a_clear_error(no_system_fonts, monkeypatch):
    monkeypatch.setattr(layout, "bundled_cjk_font", lambda: None)
    with pytest.raises(OutputError, match="no Chinese") as err:
        find_cjk_font()
    assert "--font" in str(err.value) and "fonts-noto-cjk" in str(err.value)


def test_font_option_on_layout_check_and_demo(no_system_fonts, tmp_path, capsys):
    font = str(bundled_cjk_font())
    assert main(["demo", "--out", str(tmp_path / "demo"), "--font", font, "-q"]) == 0
    assert (tmp_path / "demo" / "layout.pdf").stat().st_size > 10_000
    plan = str(demo_dir() / "plan.toml")
    bad = str(tmp_path / "missing.otf")
    for command in ("layout", "check"):
        capsys.readouterr()
        assert main([command, plan, "--out", str(tmp_path / command), "--font", bad]) == 2
        err = capsys.readouterr().err
        assert "font file not found" in err and "missing.otf" in err
        assert not (tmp_path / command).exists()  # refused before the check ran
