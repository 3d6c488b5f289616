"""The typed model of a test: what users give (overrides, targets) and the rules it must meet, in one place."""
