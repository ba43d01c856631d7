# An app that fails to import, for the load-failure tests.
raise RuntimeError("config test: broken app")
