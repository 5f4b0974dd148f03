"""Kreis server: pages, signalling, rooms, lobby, auth and configuration."""
