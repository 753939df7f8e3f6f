"""Recipes that compose layers which may not import each other (top layer, beside the CLI)."""
