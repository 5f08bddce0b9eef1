"""Version 2's database of user submissions: the store, its tables, its files, field validation and
de-identification."""
