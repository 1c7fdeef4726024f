"""Security events (SPEC §10): the transactional outbox and its webhook deliverer."""
