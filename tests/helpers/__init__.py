"""Test oracles and campaign configs shared by the test modules."""
