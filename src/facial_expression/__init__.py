"""Facial expression recognition with VGG16 transfer learning and the light VGG of Hewitt & Gunes (2018)."""

__version__ = "0.1.0"
