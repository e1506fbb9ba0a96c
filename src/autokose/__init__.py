"""AutoKöse: character-consistent storyboards from a one-line logline."""

__version__ = "0.1.0"
