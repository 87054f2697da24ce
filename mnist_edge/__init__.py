"""The `mnist-edge` command: one entry point whose subcommands live in the train, export and serve packages."""
