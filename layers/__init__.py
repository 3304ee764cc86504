"""Bundled catalogue (``catalog/``) and synthetic demo township (``demo/``) of spatialplan."""
