"""qasic."""
