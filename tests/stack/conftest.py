"""Fixtures of the stack tests (the helpers live in stacknet.py, importable by name from the test modules)."""

from stacknet import net  # noqa: F401 - the module-scoped namespaces fixture
