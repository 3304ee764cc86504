"""Reading and writing: the plan file, layers and rasters, validation, encodings, output files.

The readers (``plan``, ``read``, ``bubiao``) feed the analysis; the writers (``output``,
``_xlsx``) are used only by ``render``, ``pipeline`` and the CLI.
"""
