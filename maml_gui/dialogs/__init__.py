"""Small dialogs: export weights, run as a sweep or in N processes."""
