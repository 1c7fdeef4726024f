"""`python -m app.conformance`: the same as the `baton-conformance` console script."""
from app.conformance.command import main

main()
