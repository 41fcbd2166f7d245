def pytest_configure(config):
    # registered here until the markers list in pyproject.toml has it (issue 12 owns that list)
    config.addinivalue_line("markers", "fast: a quick smoke, runs in every CI lane")
