"""Real services for the test suite, started by the tests themselves."""
