"""Shims for third-party evaluation code that newer dependencies broke."""
import numpy as np


def in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
    """``numpy.in1d`` (removed in numpy 2.4): ``numpy.isin`` of the flattened ``ar1``."""
    return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert, kind=kind)


if not hasattr(np, 'in1d'):
    # cityscapesscripts 2.3.0, the latest release, which mmdet's CityScapesMetric evaluates
    # with (Cityscapes instance AP), calls numpy.in1d.
    np.in1d = in1d
