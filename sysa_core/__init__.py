"""sysa_core: train and reverse-engineer System A (a rate RNN that turns a pulse's duration
into a sustained output plateau). See README.md."""

__version__ = "0.1.0"
