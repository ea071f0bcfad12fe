"""nngeo: geometry and topology of neural networks."""

__version__ = "0.1.0"
