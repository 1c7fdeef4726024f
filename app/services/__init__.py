"""Services own transactions and row locks; they return plain values, never ORM objects.

Rooms by domain, each importing only from the rooms listed before it (and from this package's
own `errors` and `unit_of_work`):
  audit        security events (the outbox) and their webhook delivery
  tenancy      tenants, their lookup and cache, signing keys, admin keys, webhook endpoints
  tokens       the token family: locks, rotation, access tokens, sessions, introspection
  accounts     users, usernames and passwords, password reset
  signin       the password grant and its throttle
  maintenance  purge, the development demo
"""
