"""Hash the tables of a ``spatialplan check`` output folder, to prove a change altered none.

The tables are hashed by content, not by file bytes: every layer of ``results.gpkg`` (its
column names, dtypes, values and geometry WKB, in row order; a GeoPackage file also holds
timestamps), and the CSV and XLSX files (bytes; their writers are deterministic). The map,
layout and report are left out: they carry library versions and rendering details.

Usage::

    python scripts/output_hashes.py OUT_DIR                 # print one hash per table
    python scripts/output_hashes.py BEFORE_DIR AFTER_DIR    # compare; exit 1 if any differs
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import pyogrio


def _gpkg_hashes(path: Path) -> dict[str, str]:
    hashes = {}
    for name, _ in pyogrio.list_layers(path):
        df = pyogrio.read_dataframe(path, layer=name)
        h = hashlib.sha256()
        h.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
        geometry = getattr(df, "_geometry_column_name", None)
        for column in df.columns:
            values = df[column]
            if column == geometry:
                data = b"".join(g.wkb if g is not None else b"\0" for g in values)
            else:
                data = "\x1f".join(map(repr, values.tolist())).encode()
            h.update(column.encode() + b"\x1e" + data)
        hashes[f"results.gpkg:{name}"] = h.hexdigest()
    return hashes


def output_hashes(folder: str | Path) -> dict[str, str]:
    """Return ``{table: sha256}`` for the tables of one output folder."""
    folder = Path(folder)
    hashes: dict[str, str] = {}
    if (folder / "results.gpkg").is_file():
        hashes.update(_gpkg_hashes(folder / "results.gpkg"))
    for path in sorted([*folder.glob("*.csv"), *folder.glob("*.xlsx")]):
        hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def main(argv: list[str] | None = None) -> int:
    """Print the hashes of one folder, or compare two (exit 1 when a table differs)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", metavar="DIR")
    args = parser.parse_args(argv)
    if len(args.folders) == 1:
        for name, digest in output_hashes(args.folders[0]).items():
            print(f"{digest}  {name}")
        return 0
    before, after = (output_hashes(f) for f in args.folders[:2])
    differ = 0
    for name in sorted(set(before) | set(after)):
        same = before.get(name) == after.get(name)
        differ += not same
        print(f"{'same' if same else 'DIFF'}  {name}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
