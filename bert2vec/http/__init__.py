"""The HTTP edge: the encode handler, routes, wire formats (ours, OpenAI, TEI), the service behind them
and `/search`. Never imports the bulk path."""
