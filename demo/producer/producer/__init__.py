"""TripClick producer (demo build)."""
