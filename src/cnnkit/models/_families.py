"""Imports every model family so its builders register themselves."""

from . import alexnet, densenet, inception, lenet, linear, mobilenet, resnet, squeezenet, vgg  # noqa: F401
