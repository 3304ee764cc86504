"""Rendering: the Folium web map, the print layout map and the HTML report."""
