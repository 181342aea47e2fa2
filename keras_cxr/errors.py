"""The exception types the command line turns into a clear message and a non-zero exit."""


class KerasCXRError(Exception):
    """A user-facing error: bad input, bad parameter, or a run that cannot go on.

    The message names the file or parameter at fault, so the CLI prints it as is.
    """


class ImageError(KerasCXRError):
    """An image file that cannot be decoded; the message names the file. Dataset scans catch it
    to skip and list such files (`--skip-corrupt`)."""
