"""The one exception the plugin reports to the user."""


class CliError(Exception):
    """A problem to report in one line (`error: ...`, exit status 1)."""
