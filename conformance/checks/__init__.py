"""The conformance checks: one module per spec section, one property per check.

Every check carries ``@pytest.mark.requirements(...)`` naming the requirement ids it
verifies and takes the ``rep`` fixture (:class:`conformance.harness.Harness`).
"""
