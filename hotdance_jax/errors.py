"""The error type for bad user input."""


class InputError(ValueError):
    """Bad input from the user (a file, a value, a shape); its message is one line that names it."""
