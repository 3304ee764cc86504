"""Write the construction sequence table (时序表) as XLSX and CSV, atomically.

The write side of :mod:`spatialplan.analysis.schedule`, which builds the table; the XLSX prints
landscape, fitted to the page width, with the header on every page.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from spatialplan.analysis.schedule import NUMBER_DECIMALS
from spatialplan.io.output import write_table

__all__ = ["write_schedule_csv", "write_schedule_xlsx"]

logger = logging.getLogger(__name__)

#: the XLSX number format of each float column: its decimals, thousands separated
NUMBER_FORMATS = {col: "#,##0." + "0" * digits for col, digits in NUMBER_DECIMALS.items()}


def _is_total(value: object) -> bool:
    return value is None or value == "" or (not isinstance(value, str) and pd.isna(value))


def write_schedule_xlsx(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the 时序表 as XLSX: frozen header, fitted widths, bold total rows (atomic).

    Areas (亩) carry the number format ``#,##0.0000``, investments (万元) ``#,##0.00``; total
    rows (empty ``序号``) are bold. Written by the streaming writer
    :func:`spatialplan.io._xlsx.write_xlsx`, so the file is byte-deterministic and a formula-like
    text stays text; it prints A4 landscape, one page wide, with the header row on every page.

    Parameters
    ----------
    table
        Output of :func:`spatialplan.analysis.schedule.sequence_table`.
    path
        Target ``.xlsx`` file; written to a temporary file beside it, then moved into place.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> from spatialplan.analysis.schedule import sequence_table
    >>> t = sequence_table(pd.DataFrame({"project_id": ["A"], "investment_wan": [1.0]}))
    >>> write_schedule_xlsx(t, pathlib.Path(tempfile.mkdtemp()) / "s.xlsx").name
    's.xlsx'
    """
    bold = np.fromiter((_is_total(v) for v in table.iloc[:, 0].tolist()), dtype=bool,
                       count=len(table))
    formats = {col: fmt for col, fmt in NUMBER_FORMATS.items() if col in table.columns}
    target = write_table(table, path, sheet_name="建设项目时序表", bold_rows=bold,
                         number_formats=formats)
    logger.debug("wrote %s (%d rows)", target, len(table))
    return target


def write_schedule_csv(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    r"""Write the 时序表 as CSV in UTF-8 with BOM (so Excel shows the Chinese), atomically.

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> from spatialplan.analysis.schedule import sequence_table
    >>> t = sequence_table(pd.DataFrame({"project_id": ["A"], "investment_wan": [1.0]}))
    >>> p = write_schedule_csv(t, pathlib.Path(tempfile.mkdtemp()) / "s.csv")
    >>> p.read_bytes()[:3] == b"\xef\xbb\xbf"
    True
    """
    return write_table(table, path)
