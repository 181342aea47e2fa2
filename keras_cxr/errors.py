"""The one exception type the command line turns into a clear message and a non-zero exit."""


class KerasCXRError(Exception):
    """A user-facing error: bad input, bad parameter, or a run that cannot go on.

    The message names the file or parameter at fault, so the CLI prints it as is.
    """
