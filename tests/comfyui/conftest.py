"""The real-frontend tests record the frontend version the browser ran (user property "frontend");
it is printed at the end of the run so that a results table names the frontend it was made with."""


def pytest_terminal_summary(terminalreporter):
    seen = sorted({value for reports in terminalreporter.stats.values() for r in reports
                   for key, value in getattr(r, "user_properties", ()) if key == "frontend"})
    if seen:
        terminalreporter.write_line(f"ComfyUI frontend in the browser: {', '.join(map(str, seen))}")
