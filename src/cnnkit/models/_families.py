"""Imports every model family so its builders register themselves."""

from . import airbench, alexnet, densenet, inception, lenet, linear, mobilenet, resnet, squeezenet, stn, vgg  # noqa: F401
