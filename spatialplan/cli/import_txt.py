"""``spatialplan import-txt FILE --out sites.gpkg``: 部标坐标 TXT → GeoPackage."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run", "summary_lines"]

_MU = 2000.0 / 3.0  # m² per 亩


def register(sub) -> None:
    """Add the ``import-txt`` command."""
    p = sub.add_parser(
        "import-txt",
        help="convert a 部标坐标 TXT (land-submission coordinates) to a GeoPackage",
        description="Read a ministry land-submission coordinate TXT ([属性描述] + [地块坐标], "
        "X = northing, Y = easting, GBK or UTF-8) and write one polygon per parcel, in its "
        "CGCS2000 3-degree Gauss-Kruger CRS, to a GeoPackage. Declared areas that differ "
        "from the geometry by more than 1% are flagged (area_mismatch).",
    )
    p.add_argument("file", metavar="FILE", help="the 部标 TXT file")
    p.add_argument("--out", required=True, metavar="GPKG", help="GeoPackage to write (.gpkg)")
    p.add_argument("--encoding", metavar="ENC",
                   help="text encoding, e.g. GBK (default: detect UTF-8 or GBK/GB18030)")
    p.add_argument("--layer", default="sites", metavar="NAME",
                   help="layer name in the GeoPackage (default: sites)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (the whole file)")
    p.set_defaults(func=run)


def summary_lines(sites, source: str | Path, out: str | Path, layer: str) -> list[str]:
    """Format the import summary (parcels, areas, CRS, mismatches) as text lines."""
    lines = [
        f"read: {source} ({sites.attrs.get('encoding')}, {sites.attrs.get('encoding_reason')})",
        f"CRS: {sites.crs.to_string()} — {sites.attrs.get('crs_reason')}",
        f"parcels: {len(sites)} (areas are planar, in the Gauss-Krüger zone)",
    ]
    for row in sites.itertuples(index=False):
        flag = "  ** declared area differs by more than 1% **" if row.area_mismatch else ""
        lines.append(
            f"  {row.parcel_no} {row.name} [{row.landuse or '-'}]: {row.area_m2:,.1f} m² "
            f"= {row.area_m2 / 10_000:.4f} 公顷 = {row.area_m2 / _MU:,.2f} 亩; "
            f"declared {row.declared_area_m2:,.1f} m²{flag}")
    total = float(sites["area_m2"].sum())
    n_bad = int(sites["area_mismatch"].sum())
    lines.append(f"total: {total:,.1f} m² = {total / 10_000:.4f} 公顷 = {total / _MU:,.2f} 亩")
    lines.append(f"area mismatches (> 1%): {n_bad}"
                 + (" — the computed areas are used" if n_bad else ""))
    lines.append(f"written: {out} (layer {layer})")
    return lines


def _write(sites, out: Path, layer: str) -> None:
    import pyogrio

    from spatialplan.errors import OutputError
    from spatialplan.io.output import atomic_path

    try:
        with atomic_path(out) as tmp:
            sites.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")
            n = pyogrio.read_info(tmp, layer=layer)["features"]
            if n != len(sites):
                raise OutputError(f"wrote {n} features instead of {len(sites)}", path=out)
    except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise OutputError(f"cannot write the GeoPackage: {exc}", path=out,
                          hint="check the folder exists and is writable") from exc


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from spatialplan.errors import OutputError
    from spatialplan.io.bubiao import read_bubiao_txt

    source, out = Path(args.file), Path(args.out)
    if out.suffix.lower() != ".gpkg":
        raise OutputError("the output must be a GeoPackage", path=out,
                          hint="give a file name ending in .gpkg")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise OutputError("the output would overwrite the input", path=out)
    if out.exists() and not args.overwrite:
        raise OutputError("the output file exists", path=out,
                          hint="choose another name or pass --overwrite")
    sites = read_bubiao_txt(source, encoding=args.encoding)
    _write(sites, out, args.layer)
    print("\n".join(summary_lines(sites, source, out, args.layer)))
    return 0
