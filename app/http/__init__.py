"""The HTTP layer every blueprint shares (app.oauth, app.admin, the probes).

Blueprints import from here and from the services, never from each other: reading bodies
and queries strictly (wire.py), request and answer models and the one translation of their
validation errors (models.py, validation.py), credentials (auth.py), no-store answers
(answers.py), the clock and the tenant slug check (web.py), and what each operation says
about itself for the OpenAPI document (operations.py).
"""
