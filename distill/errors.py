"""Errors a user can act on; the CLI prints them as one paragraph, without a traceback."""


class DistillError(Exception):
    """A problem with a model, cache or option that the user can fix; the message says how."""
