"""The settings a config file is made of, section by section (``sections``); ``config`` reads
the file, puts them together and derives one config per company of a group."""
