"""Errors caused by what a user gave (a file that is missing or is not what it should be).

Their message names the problem and the fix, so the command-line tools print it alone, without a
traceback (``tools/test.py``, ``tools/train.py``, ``demo/image_demo.py``); Python callers can
still catch them as the built-in errors they derive from.
"""


class XDecoderInputError(Exception):
    """Base class: the message is the whole answer to the user."""


class CheckpointError(XDecoderInputError, RuntimeError):
    """A checkpoint that is not an X-Decoder checkpoint of the config's model."""


class InputNotFoundError(XDecoderInputError, FileNotFoundError):
    """A checkpoint, dataset folder or annotation file that does not exist."""


class DatasetError(XDecoderInputError, ValueError):
    """An annotation file or dataset setting that cannot be trained on as it is."""
