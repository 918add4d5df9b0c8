"""Task type plugins for the tests, written as a user would write one (docs/task-types.md)."""
