"""Benchmarks that run Bastion against real local servers.

Nothing in the product imports this package.
"""
