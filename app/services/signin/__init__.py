"""Signing in: the password grant and the throttle of failed attempts (SPEC §4.1, §11)."""
