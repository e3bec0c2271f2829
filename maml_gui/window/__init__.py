"""The main window, its menus, panels and the live views kept in step with the session."""
