"""Dataset loaders (being assembled)."""
