"""Catalog and config: YAML documents in, validated and frozen values out."""
