"""Errors that are the user's to fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A mistake in the user's input (file, option, name); the message says how to fix it."""
