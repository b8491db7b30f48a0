"""Routing: a request's route, its candidates, and the walk down them (health, limits)."""
