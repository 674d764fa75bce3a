"""The AWS layer: how clients are built (one factory) and how their failures are read (one
classifier), shared by the encode function's ``/search``, the bulk path and the command line."""
