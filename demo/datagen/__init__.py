"""Deterministic synthetic TripClick days."""
