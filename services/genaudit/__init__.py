"""genaudit: auditing service for generative image models."""

__version__ = "0.1.0"
