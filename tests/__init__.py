"""The provider's test suite: a package, so tests import ``tests.helpers`` and ``tests.helpers.hostile``."""
