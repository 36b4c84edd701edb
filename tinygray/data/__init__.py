"""Images in: built-in sets and image folders read, checked for leakage, split, prepared; augmented views."""
