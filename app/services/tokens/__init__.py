"""The token family (SPEC §5, §6): locks, rotation, access tokens, sessions, introspection."""
