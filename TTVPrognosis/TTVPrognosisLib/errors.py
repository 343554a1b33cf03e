"""Errors meant for people: what is wrong, where, and what to do about it."""


class InputError(ValueError):
    """Bad input a user can fix (missing file, wrong image type, mismatched geometry, bad value).

    The message is shown as is in the Slicer panel, on the command line and in batch result tables, so it
    names the file or value and says what to do.
    """
