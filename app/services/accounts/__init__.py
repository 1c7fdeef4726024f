"""Users of a tenant: usernames, the password policy, creation, changes, password reset."""
