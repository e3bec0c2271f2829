"""The command line: one module per subcommand and the flag groups they share."""
