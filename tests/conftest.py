"""Shared fixtures: real services started on loopback when the machine does not already run them, and the test
helpers several modules use (weights files we make, one torch thread)."""

pytest_plugins = [
    "tests.fixtures.inception_weights",
    "tests.fixtures.redis",
    "tests.fixtures.s3",
    "tests.fixtures.threads",
    "tests.fixtures.worker",
]
