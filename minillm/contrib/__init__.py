"""Integrations with frameworks; each is imported only when asked for."""
