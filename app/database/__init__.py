"""PostgreSQL specifics under the services: timeouts, fault classification, hot statements."""
