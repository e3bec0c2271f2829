"""Bringing CSV files and image folders into the window: dialogs and their plain-data plans."""
