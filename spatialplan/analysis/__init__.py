"""Analysis: control-line overlay, terrain and the construction schedule. Never writes files."""
