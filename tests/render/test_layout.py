"""Layout map (项目布局图): CJK font, contents, one PDF page per township."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _map_fixtures import HOSTILE, layers
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

from spatialplan.errors import DataLayerError, OutputError
from spatialplan.render.layout import find_cjk_font, layout_figure, nice_length, write_layout


def _fig(code="520123001", data=None, **kwargs):
    data = data or layers()
    opts = {"townships": data["township_stats"], "redline": data["redline"],
            "farmland": data["farmland"], "udb": data["udb"], "parcels": data["parcels"],
            "projects": data["projects"], "dpi": 60, "date": "2025-01-31",
            "sources_note": "synthetic test data"}
    opts.update(kwargs)
    return layout_figure(code, **opts)


def _texts(fig):
    texts = list(fig.findobj(Text))
    for ax in fig.axes:
        for table in ax.tables:
            texts += [cell.get_text() for cell in table.get_celld().values()]
        if ax.get_legend() is not None:
            texts += [ax.get_legend().get_title(), *ax.get_legend().get_texts()]
    return texts


def test_title_uses_a_cjk_font():
    fig = _fig()
    title = next(t for t in _texts(fig) if t.get_gid() == "sp-title")
    assert title.get_text() == "示范镇“8+X”项目布局图"
    path = font_manager.findfont(title.get_fontproperties(), fallback_to_default=False)
    face = FT2Font(path)
    assert all(face.get_char_index(ord(ch)) for ch in "示范镇项目布局图")
    assert re.search(r"CJK|Han|WenQuanYi|Hei|YaHei|PingFang|Noto Sans SC",
                     face.family_name + path)


def test_renders_without_missing_glyph_warnings(tmp_path):
    # pytest turns warnings into errors: a "Glyph ... missing from font" warning fails here
    data = layers(hostile=True)
    fig = _fig(data=data)
    fig.savefig(tmp_path / "x.png", dpi=40)
    fig.savefig(tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").stat().st_size > 10_000


def test_contents():
    fig = _fig()
    text = "\n".join(t.get_text() for t in _texts(fig))
    for needle in ("编号", "项目名称", "类别", "合规性", "示范镇卫生院", "中心小学", "符合",
                   "需论证", "N", "比例尺", "EPSG:4545", "synthetic test data", "2025-01-31",
                   "图例", "生态保护红线", "永久基本农田", "城镇开发边界", "未落图"):
        assert needle in text, needle
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any(re.fullmatch(r"4\d\d,\d{3}", s) for s in labels)  # GK metres, not degrees


def test_pdf_has_one_page_per_township(tmp_path):
    figs = [_fig(code) for code in ("520123001", "520123002")]
    out = write_layout(figs, tmp_path / "layout.pdf", tmp_path / "layout.png", png_index=1)
    pdf = out["pdf"].read_bytes()
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 2
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.pdf", "layout.png"]


def test_unknown_township_and_font():
    with pytest.raises(DataLayerError, match="not found"):
        _fig("999")
    with pytest.raises(OutputError, match="fonts-noto-cjk"):
        find_cjk_font("/nonexistent/font.otf")
    with pytest.raises(OutputError, match="fonts-noto-cjk"):
        find_cjk_font("DejaVu Sans")  # installed but without Chinese glyphs


def test_hostile_names_are_plain_text():
    fig = _fig(data=layers(hostile=True))
    text = "\n".join(t.get_text() for t in _texts(fig))
    assert HOSTILE[0][:10] in text  # drawn as text (matplotlib does not interpret HTML)


@pytest.mark.parametrize(("span", "expected"), [(7300, 1000), (23000, 2000), (900, 100),
                                                (1.2e5, 2e4)])
def test_nice_length(span, expected):
    assert nice_length(span) == expected


def _png(path):
    from matplotlib.image import imread

    return (imread(path) * 255).round().astype("uint8")


def test_png_shows_every_page(tmp_path):
    figs = [_fig(code) for code in ("520123001", "520123002")]
    out = write_layout(figs, tmp_path / "layout.pdf", tmp_path / "layout.png", dpi=40)
    sheet = _png(out["png"])
    # two A3 pages side by side, each at 40 / 2 dpi, with a 12-pixel gutter
    page = figs[0].get_size_inches() * 20
    assert sheet.shape[:2] == (int(page[1]), 2 * int(page[0]) + 12)
    for k, fig in enumerate(figs):  # each tile is that page, stamp included
        stamp = [t.get_text() for t in fig.texts if t.get_gid() == "sp-page"]
        assert stamp == [f"第 {k + 1} / 2 页  page {k + 1} of 2"]
        tile = _render(fig, 20)
        x = k * (tile.shape[1] + 12)
        np.testing.assert_array_equal(sheet[:, x:x + tile.shape[1], :3], tile[..., :3])
    # the PDF carries the same stamps
    assert len(re.findall(rb"/Type\s*/Page[^s]", out["pdf"].read_bytes())) == 2
    # pages streamed from an iterator (as a check writes them) give the same sheet
    again = write_layout(iter(figs), tmp_path / "s.pdf", tmp_path / "s.png", dpi=40, n_pages=2)
    np.testing.assert_array_equal(_png(again["png"]), sheet)


def test_png_of_one_page_names_it(tmp_path):
    figs = [_fig(code) for code in ("520123001", "520123002")]
    out = write_layout(figs, tmp_path / "layout.pdf", tmp_path / "layout.png", png_index=1,
                       dpi=30)
    np.testing.assert_array_equal(_png(out["png"])[..., :3], _render(figs[1], 30)[..., :3])
    assert [t.get_text() for t in figs[1].texts if t.get_gid() == "sp-page"] == [
        "第 2 / 2 页  page 2 of 2"]
    # written again: one stamp, not two; a single page carries none
    write_layout(figs[:1], tmp_path / "one.pdf", tmp_path / "one.png", dpi=30)
    assert not [t for t in figs[0].texts if t.get_gid() == "sp-page"]


def _render(fig, dpi):
    from spatialplan.render.layout import _render_rgba

    return _render_rgba(fig, dpi)


def test_pages_written_one_at_a_time(tmp_path):
    # a check writes one page per township: from a generator, a written page's figure must be
    # freed (held together they took 1.5 GB at 200 townships); only the PNG's is kept
    import gc
    import weakref

    refs = []

    def pages():
        for k in range(4):
            if k >= 2:
                gc.collect()
                assert refs[k - 1]() is None, f"page {k - 1} still held while page {k} is drawn"
            fig = _fig(("520123001", "520123002")[k % 2])
            refs.append(weakref.ref(fig))
            yield fig
            del fig  # the generator itself keeps no page

    out = write_layout(pages(), tmp_path / "layout.pdf", tmp_path / "layout.png", png_index=0,
                       n_pages=4)
    assert len(re.findall(rb"/Type\s*/Page[^s]", out["pdf"].read_bytes())) == 4
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OutputError, match="out of range"):
        write_layout(pages(), tmp_path / "again.pdf", png_index=9, n_pages=4)
    with pytest.raises(OutputError, match="no layout pages"):
        write_layout(iter([]), tmp_path / "none.pdf")
    with pytest.raises(OutputError, match="3 layout pages drawn, 4 expected"):
        write_layout((f for k, f in enumerate(pages()) if k < 3), tmp_path / "short.pdf",
                     n_pages=4)
    assert not any((tmp_path / f).exists() for f in ("again.pdf", "none.pdf", "short.pdf"))
