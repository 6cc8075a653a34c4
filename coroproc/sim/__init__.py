"""Deterministic simulator and EVS checker."""
