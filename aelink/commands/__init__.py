"""One module per `aelink` subcommand: `register(subparsers)` adds it, `args.run(args)` runs it."""
