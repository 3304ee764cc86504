"""Layout map (项目布局图): CJK font, contents, one PDF page per township."""

from __future__ import annotations

import re

import pytest
from _map_fixtures import HOSTILE, layers
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

from spatialplan.errors import DataLayerError, OutputError
from spatialplan.layout import find_cjk_font, layout_figure, nice_length, write_layout


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
    assert re.search(r"CJK|Han|WenQuanYi|Hei|YaHei|PingFang", face.family_name + path)


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

    out = write_layout(pages(), tmp_path / "layout.pdf", tmp_path / "layout.png", png_index=0)
    assert len(re.findall(rb"/Type\s*/Page[^s]", out["pdf"].read_bytes())) == 4
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OutputError, match="out of range"):
        write_layout(pages(), tmp_path / "again.pdf", png_index=9)
    with pytest.raises(OutputError, match="no layout pages"):
        write_layout(iter([]), tmp_path / "none.pdf")
    assert not (tmp_path / "again.pdf").exists() and not (tmp_path / "none.pdf").exists()
