"""The session model: runs, the project folder, saving, scoring and following runs."""
