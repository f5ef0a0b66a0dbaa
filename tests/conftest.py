"""Shared fixtures: real services started on loopback when the machine does not already run them."""

pytest_plugins = ["tests.fixtures.redis", "tests.fixtures.s3", "tests.fixtures.threads", "tests.fixtures.worker"]
