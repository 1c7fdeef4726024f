"""Tenants: their lookup and settings, signing keys, admin keys and webhook endpoints."""
