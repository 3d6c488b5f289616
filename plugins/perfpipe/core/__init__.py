"""The core: the typed model, the InfluxDB hook, the k6 operators, k6 command and runner. Imports nothing from
perfpipe.app or perfpipe.entry."""
